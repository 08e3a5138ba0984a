// rollout_bench: how quickly rollout status follows the agents, and what the agent prober costs,
// from 100 to 2,000 injected pods.
//
// Usage: rollout_bench [--pods 100,250,500,1000,2000] [--steady-seconds 10]
//        [--swap-window-seconds 5] [--interval-ms 10000] [--max-in-flight 64] [--no-hint]
//
// For each pod count N: N simulated agents listen on 127.0.0.1, one socket each, all in this
// process (tests/operator/controller/agent_prober_fake_agents.h: /v1/status bodies shaped like
// sidecar/agent/status_json.cc's, served on one I/O thread). The operator side runs in a child
// process (this binary re-executed with --operator-side), so its CPU time and peak RSS are its
// own: a Store filled with N injected pods (as the injected-pod informer fills it), the operator's
// AgentProber with the operator's defaults (interval 10 s, rollout interval 1 s, 64 in flight,
// 2 s timeout) and the status computation (pods_loaded/pods_total of the version, as
// version_status.cc's SetPhaseAndConditions takes them from AgentProber::LoadFor), recomputed on
// every on_change. Steps:
//  1. every agent serves v1 (generation 1); wait until status shows N/N on v1;
//  2. steady state for --steady-seconds: the operator's CPU over that window;
//  3. a publish of v2: the child is told (what the controller does when v2 turns Active:
//     AgentProber::ExpectVersion; --no-hint leaves the prober to notice the swap itself), and each
//     agent switches to v2 (generation 2) at a uniformly random moment within
//     --swap-window-seconds; the time from the last agent's switch to status showing N/N on v2,
//     and the operator's CPU from the publish until then.
// Reported per N: that latency, CPU in cores (steady, rollout), the child's peak RSS, the most
// connections the agents saw open at once and requests they served at once (see
// FakeAgents::max_open), probes made. Targets: <= 10 s, <= 0.5 core,
// <= 100 MB, concurrency bounded by --max-in-flight. The open-file limit is raised to its hard
// limit (N listening sockets). The machine's load average is printed: other builds share it.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "operator/api/well_known.h"
#include "operator/controller/agent_prober.h"
#include "tests/operator/controller/agent_prober_fake_agents.h"

using namespace modelswap;
using namespace modelswap::op;
using testing::FakeAgents;
using Clock = std::chrono::steady_clock;

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

int64_t CpuNs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](timeval t) { return int64_t{t.tv_sec} * 1'000'000'000 + int64_t{t.tv_usec} * 1000; };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

long MaxRssKb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string Arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}

bool Flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == name) return true;
  }
  return false;
}

Json Pod(int i, int port) {
  std::string name = "app-" + std::to_string(i);
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", name},
        {"namespace", "bench"},
        {"uid", "uid-" + std::to_string(i)},
        {"resourceVersion", "1"},
        {"labels", {{kLabelInjected, "true"}, {"app", "ranker"}}},
        {"annotations", {{kAnnotationModels, "ranker"}}}}},
      {"spec",
       {{"containers", Json::array({{{"name", "app"}, {"image", "app:1"}}})},
        {"initContainers",
         Json::array({{{"name", "modelswap-agent"},
                       {"restartPolicy", "Always"},
                       {"ports", Json::array({{{"name", "agent"}, {"containerPort", port}}})}}})}}},
      {"status", {{"phase", "Running"}, {"podIP", "127.0.0.1"}}}};
}

// ---- the operator side (child) ----------------------------------------------------------------
// stdin: "TARGET v" (status watches v), "EXPECT v" (the same, and AgentProber::ExpectVersion),
// "USAGE", "QUIT". Report fd: "LOADED v <mono ns>" once status shows every pod on v;
// "USAGE <cpu ns> <max rss kB> <probes> <max in flight>".
int OperatorSide(const std::string& ports_file, int report_fd, int interval_ms, int cap) {
  spdlog::set_level(spdlog::level::err);
  std::vector<Json> pods;
  std::ifstream in(ports_file);
  for (int port; in >> port;)
    pods.push_back(Pod(static_cast<int>(pods.size()), port));
  const int n = static_cast<int>(pods.size());
  Store store;
  (void)store.Replace(std::move(pods), "1");
  std::mutex mu;
  std::string target;  // guarded by mu
  bool reported = true;
  auto report = [report_fd](const std::string& line) {
    (void)!write(report_fd, line.data(), line.size());
  };
  AgentProber* prober_ptr = nullptr;
  auto check = [&] {
    // The status computation: pods_loaded/pods_total of the target version.
    ModelLoad l = prober_ptr->LoadFor("bench/ranker");
    std::lock_guard lock(mu);
    auto it = l.loaded.find(target);
    int loaded = it == l.loaded.end() ? 0 : it->second;
    if (!reported && l.complete && l.total == n && loaded == n) {
      reported = true;
      report("LOADED " + target + " " + std::to_string(NowNs()) + "\n");
    }
  };
  AgentProbeOptions o{.interval = std::chrono::milliseconds(interval_ms), .max_in_flight = cap};
  AgentProber prober(
      &store, [&](const std::string&) { check(); }, o);
  prober_ptr = &prober;
  prober.Start();
  std::string cmd, arg;
  while (std::cin >> cmd) {
    if (cmd == "TARGET" || cmd == "EXPECT") {
      std::cin >> arg;
      {
        std::lock_guard lock(mu);
        target = arg;
        reported = false;
      }
      if (cmd == "EXPECT") prober.ExpectVersion("bench/ranker", arg);
      check();
    } else if (cmd == "USAGE") {
      AgentProbeStats s = prober.stats();
      report("USAGE " + std::to_string(CpuNs()) + " " + std::to_string(MaxRssKb()) + " " +
             std::to_string(s.probes) + " " + std::to_string(s.max_in_flight) + "\n");
    } else {
      break;
    }
  }
  prober.Stop();
  return 0;
}

// ---- the agents' side (parent) ----------------------------------------------------------------
struct Child {
  pid_t pid = -1;
  FILE* cmd = nullptr;
  int report = -1;
  std::string buf;

  void Send(const std::string& line) {
    std::fputs((line + "\n").c_str(), cmd);
    std::fflush(cmd);
  }
  // The next report line starting with `word`, or "" after `limit`.
  std::string Expect(const std::string& word, std::chrono::seconds limit) {
    auto end = Clock::now() + limit;
    while (true) {
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (line.rfind(word, 0) == 0) return line;
      }
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
      if (left <= 0) return "";
      pollfd p{report, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char tmp[512];
      ssize_t r = read(report, tmp, sizeof tmp);
      if (r <= 0) return "";
      buf.append(tmp, static_cast<size_t>(r));
    }
  }
};

Child Spawn(const std::string& self, const std::string& ports_file, int interval_ms, int cap) {
  int cmd[2], rep[2];
  if (pipe(cmd) != 0 || pipe(rep) != 0) std::abort();
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    dup2(cmd[0], 0);
    close(cmd[1]);
    close(rep[0]);
    std::string fd = std::to_string(rep[1]);
    std::string iv = std::to_string(interval_ms), cp = std::to_string(cap);
    execl(self.c_str(), self.c_str(), "--operator-side", ports_file.c_str(), fd.c_str(), iv.c_str(),
          cp.c_str(), nullptr);
    _exit(127);
  }
  close(cmd[0]);
  close(rep[1]);
  c.cmd = fdopen(cmd[1], "w");
  c.report = rep[0];
  return c;
}

struct Usage {
  int64_t cpu_ns = 0;
  long rss_kb = 0;
  long probes = 0;
  int max_in_flight = 0;
};

Usage AskUsage(Child& c) {
  c.Send("USAGE");
  std::istringstream in(c.Expect("USAGE", std::chrono::seconds(30)));
  std::string word;
  Usage u;
  in >> word >> u.cpu_ns >> u.rss_kb >> u.probes >> u.max_in_flight;
  return u;
}

int64_t LoadedAt(const std::string& line) {
  std::istringstream in(line);
  std::string word, version;
  int64_t at = 0;
  in >> word >> version >> at;
  return at;
}

struct Row {
  int pods;
  double latency_s, steady_cores, rollout_cores, rss_mb;
  int max_open, max_in_service, max_in_flight;
  long probes;
  bool ok;
};

Row RunOne(const std::string& self, int n, int steady_s, double window_s, int interval_ms, int cap,
           bool hint) {
  Row row{n, 0, 0, 0, 0, 0, 0, 0, 0, false};
  FakeAgents agents(n, "ranker", {"v1", 1}, /*threads=*/1);
  std::string ports_file = "/tmp/rollout_bench_ports." + std::to_string(getpid());
  {
    std::ofstream out(ports_file);
    for (int i = 0; i < n; ++i)
      out << agents.port(i) << "\n";
  }
  Child c = Spawn(self, ports_file, interval_ms, cap);
  auto finish = [&] {
    c.Send("QUIT");
    int st;
    waitpid(c.pid, &st, 0);
    std::fclose(c.cmd);
    close(c.report);
    std::remove(ports_file.c_str());
  };
  c.Send("TARGET v1");
  if (c.Expect("LOADED", std::chrono::seconds(120)).empty()) {
    std::fprintf(stderr, "N=%d: status never showed every pod on v1\n", n);
    finish();
    return row;
  }
  Usage u0 = AskUsage(c);
  int64_t w0 = NowNs();
  std::this_thread::sleep_for(std::chrono::seconds(steady_s));
  Usage u1 = AskUsage(c);
  int64_t w1 = NowNs();
  row.steady_cores = static_cast<double>(u1.cpu_ns - u0.cpu_ns) / static_cast<double>(w1 - w0);

  // The publish: swap moments drawn up front, applied in order by this thread.
  std::mt19937_64 rng(static_cast<uint64_t>(n));
  std::uniform_real_distribution<double> at(0, window_s);
  std::vector<std::pair<double, int>> swaps;
  for (int i = 0; i < n; ++i)
    swaps.emplace_back(at(rng), i);
  std::sort(swaps.begin(), swaps.end());
  c.Send(std::string(hint ? "EXPECT" : "TARGET") + " v2");
  int64_t t0 = NowNs(), last_swap = t0;
  for (const auto& [s, i] : swaps) {
    auto when = Clock::time_point(std::chrono::nanoseconds(t0 + static_cast<int64_t>(s * 1e9)));
    std::this_thread::sleep_until(when);
    agents.SetServed(i, {"v2", 2});
    last_swap = NowNs();
  }
  std::string loaded = c.Expect("LOADED", std::chrono::seconds(180));
  Usage u2 = AskUsage(c);
  int64_t w2 = NowNs();
  if (!loaded.empty()) {
    row.ok = true;
    row.latency_s = static_cast<double>(LoadedAt(loaded) - last_swap) / 1e9;
  }
  row.rollout_cores = static_cast<double>(u2.cpu_ns - u1.cpu_ns) / static_cast<double>(w2 - w1);
  row.rss_mb = static_cast<double>(u2.rss_kb) / 1024.0;
  row.max_open = agents.max_open();
  row.max_in_service = agents.max_in_service();
  row.max_in_flight = u2.max_in_flight;
  row.probes = u2.probes;
  finish();
  return row;
}

void RaiseFileLimit(int pods) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rlim_t before = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  std::printf("open-file limit: %lu -> %lu (hard %lu); %d pods need about %d\n",
              static_cast<unsigned long>(before), static_cast<unsigned long>(rl.rlim_cur),
              static_cast<unsigned long>(rl.rlim_max), pods, pods + 200);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 6 && std::string(argv[1]) == "--operator-side") {
    return OperatorSide(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
  }
  std::vector<int> counts;
  {
    std::istringstream in(Arg(argc, argv, "--pods", "100,250,500,1000,2000"));
    for (std::string s; std::getline(in, s, ',');)
      counts.push_back(std::atoi(s.c_str()));
  }
  int steady_s = std::atoi(Arg(argc, argv, "--steady-seconds", "10").c_str());
  double window_s = std::atof(Arg(argc, argv, "--swap-window-seconds", "5").c_str());
  int interval_ms = std::atoi(Arg(argc, argv, "--interval-ms", "10000").c_str());
  int cap = std::atoi(Arg(argc, argv, "--max-in-flight", "64").c_str());
  bool hint = !Flag(argc, argv, "--no-hint");
  std::string self = "/proc/self/exe";
  char path[4096];
  if (ssize_t r = readlink("/proc/self/exe", path, sizeof path - 1); r > 0) self.assign(path, r);
  RaiseFileLimit(*std::max_element(counts.begin(), counts.end()));
  std::printf(
      "probe interval %d ms, rollout interval 1000 ms, %d in flight, swap window %.1f s, "
      "publish hint %s; load average %s, %u cpus\n",
      interval_ms, cap, window_s, hint ? "on" : "off", LoadAvg().c_str(),
      std::thread::hardware_concurrency());
  std::printf("%6s %12s %12s %13s %9s %10s %11s %10s %8s\n", "pods", "latency_s", "steady_core",
              "rollout_core", "rss_mb", "max_conns", "in_service", "in_flight", "probes");
  for (int n : counts) {
    Row r = RunOne(self, n, steady_s, window_s, interval_ms, cap, hint);
    std::printf("%6d %12.2f %12.3f %13.3f %9.1f %10d %11d %10d %8ld%s\n", r.pods, r.latency_s,
                r.steady_cores, r.rollout_cores, r.rss_mb, r.max_open, r.max_in_service,
                r.max_in_flight, r.probes, r.ok ? "" : "  (status never complete)");
    std::fflush(stdout);
  }
  std::printf("load average after: %s\n", LoadAvg().c_str());
  return 0;
}
