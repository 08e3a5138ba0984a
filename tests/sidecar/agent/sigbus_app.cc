// The app process of the truncation tests (app_sigbus_test.cc), through the C++ client or the C
// ABI:
//
//   sigbus_app --abi cpp|c --shm-dir D --model M --fallback VERSION --progress FILE
//              [--deadline-ms N]
//
// Acquires a handle, copies the value of every key of its version (the file is intact then),
// writes "ready <version>" to FILE, then looks keys up on that pinned handle in a loop while the
// test truncates the file. Every value returned is compared with the copy: one that differs
// while the handle does not report damage is a torn read. Once lookups fail (the version is
// damaged) and keep failing, it acquires again until it gets VERSION (the agent's fallback) and
// checks values of it. Writes "done lookups ok errors torn raced final_version" and exits 0 if
// it saw the damage reported, read nothing torn and ended on VERSION; 1 otherwise. Without the
// client's SIGBUS guard it dies of SIGBUS at the first lookup after the truncation.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/client/model/client.h"
#include "sidecar/client/model/modelswap.h"
#include "tests/sidecar/agent/reader_app_util.h"

namespace {

using modelswap::testing::Arg;
using modelswap::testing::WriteProgress;

using Clock = std::chrono::steady_clock;

// What a lookup gave: a copy of the value, absent, or an error.
struct Found {
  bool error = false;
  std::optional<std::string> value;
};

// One pinned handle, through either API.
class App {
 public:
  virtual ~App() = default;
  virtual bool Acquire() = 0;  // replaces the held handle; false if the client refused
  virtual std::string version() = 0;
  virtual uint64_t entries() = 0;
  virtual Found Lookup(const std::string& key) = 0;
  virtual bool damaged() = 0;
};

class CppApp : public App {
 public:
  explicit CppApp(std::unique_ptr<modelswap::client::ModelClient> c) : c_(std::move(c)) {}
  bool Acquire() override {
    auto h = c_->Acquire();
    if (h) h_ = std::move(*h);
    return h.has_value();
  }
  std::string version() override { return h_.version(); }
  uint64_t entries() override { return h_.entry_count(); }
  Found Lookup(const std::string& key) override {
    auto v = h_.Lookup(key);
    if (!v) return Found{true, std::nullopt};
    if (!*v) return Found{};
    return Found{false, std::string(**v)};
  }
  bool damaged() override { return h_.damaged(); }

 private:
  std::unique_ptr<modelswap::client::ModelClient> c_;
  modelswap::client::Handle h_;
};

class CApp : public App {
 public:
  explicit CApp(ms_model* m) : m_(m) {}
  ~CApp() override {
    ms_handle_release(h_);
    ms_model_detach(m_);
  }
  bool Acquire() override {
    ms_handle* h = nullptr;
    if (ms_acquire(m_, &h) != MS_OK) return false;
    ms_handle_release(h_);
    h_ = h;
    return true;
  }
  std::string version() override { return ms_handle_version(h_); }
  uint64_t entries() override { return entries_ ? entries_ : (entries_ = Count()); }
  Found Lookup(const std::string& key) override {
    const void* v = nullptr;
    size_t n = 0;
    ms_status st = ms_get(h_, key.data(), key.size(), &v, &n);
    if (st == MS_KEY_NOT_FOUND) return Found{};
    if (st != MS_OK) return Found{true, std::nullopt};
    return Found{false, std::string(static_cast<const char*>(v), n)};
  }
  bool damaged() override { return ms_handle_damaged(h_) != 0; }

 private:
  uint64_t Count() {  // the C ABI has no entry count: keys are "0", "1", ... (writer.h)
    uint64_t n = 0;
    while (Lookup(std::to_string(n)).value)
      ++n;
    return n;
  }
  ms_model* m_;
  ms_handle* h_ = nullptr;
  uint64_t entries_ = 0;
};

std::unique_ptr<App> Attach(const std::string& abi, const std::string& shm,
                            const std::string& model) {
  if (abi == "c") {
    ms_model* m = nullptr;
    if (ms_model_attach(shm.c_str(), model.c_str(), &m) != MS_OK) return nullptr;
    return std::make_unique<CApp>(m);
  }
  modelswap::client::Options o;
  o.shm_dir = shm;
  auto c = modelswap::client::ModelClient::Attach(model, o);
  return c ? std::make_unique<CppApp>(std::move(*c)) : nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string shm = Arg(argc, argv, "--shm-dir"), model = Arg(argc, argv, "--model");
  const std::string fallback = Arg(argc, argv, "--fallback");
  const std::string progress = Arg(argc, argv, "--progress");
  const auto end = Clock::now() +
                   std::chrono::milliseconds(std::stol(Arg(argc, argv, "--deadline-ms", "60000")));
  auto app = Attach(Arg(argc, argv, "--abi", "cpp"), shm, model);
  if (app == nullptr || !app->Acquire()) {
    std::fprintf(stderr, "attach/acquire failed\n");
    return 2;
  }
  const std::string pinned = app->version();
  std::vector<std::string> want;
  for (uint64_t k = 0; k < app->entries(); ++k) {
    Found f = app->Lookup(std::to_string(k));
    if (f.error || !f.value) return 2;
    want.push_back(*f.value);
  }
  WriteProgress(progress, "ready " + pinned);

  uint64_t lookups = 0, ok = 0, errors = 0, torn = 0, raced = 0, after_error = 0;
  for (uint64_t i = 0; after_error < 1000 && Clock::now() < end; ++i) {
    const uint64_t k = i % want.size();
    Found f = app->Lookup(std::to_string(k));
    ++lookups;
    if (f.error) {
      ++errors;
      ++after_error;
      continue;
    }
    if (after_error > 0) {
      ++torn;  // damage is for good: no value after the first error
    } else if (f.value == want[k]) {
      ++ok;
    } else if (app->damaged()) {
      ++raced;  // truncated between the lookup's check and our compare: the contract's case
    } else {
      ++torn;
    }
  }
  // Re-acquire until the agent's fallback serves, then read it.
  std::string final_version;
  while (Clock::now() < end) {
    if (app->Acquire() && app->version() == fallback) {
      final_version = fallback;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a retry's backoff
  }
  for (uint64_t k = 0; !final_version.empty() && k < 200; ++k) {
    Found f = app->Lookup(std::to_string(k));
    std::string prefix = model + "/" + fallback + "/" + std::to_string(k) + "/";
    if (f.error || !f.value || !f.value->starts_with(prefix)) ++torn;
  }
  WriteProgress(progress, "done " + std::to_string(lookups) + " " + std::to_string(ok) + " " +
                              std::to_string(errors) + " " + std::to_string(torn) + " " +
                              std::to_string(raced) + " " +
                              (final_version.empty() ? "-" : final_version));
  return errors > 0 && torn == 0 && final_version == fallback ? 0 : 1;
}
