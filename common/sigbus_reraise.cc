// The hand-over of a SIGBUS to the previous disposition (see sigbus_reraise.h).
#include "common/sigbus_reraise.h"

namespace modelswap {

void PassSigbusOn(const struct sigaction& previous, int sig, siginfo_t* info, void* context) {
  if ((previous.sa_flags & SA_SIGINFO) != 0) {
    if (previous.sa_sigaction != nullptr) previous.sa_sigaction(sig, info, context);
    return;
  }
  const bool sent = info == nullptr || info->si_code <= 0;  // kill(2), raise(3), sigqueue(3)
  if (previous.sa_handler == SIG_IGN && sent) return;       // ignored, as it was before us
  if (previous.sa_handler != SIG_IGN && previous.sa_handler != SIG_DFL) {
    previous.sa_handler(sig);
    return;
  }
  // The default: die of it (see the header for how a fault and a sent signal each get there).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  if (sent) ::raise(sig);
}

}  // namespace modelswap
