// ProbeClient: the agent prober's HTTP client. One GET /v1/status per call, HTTP/1.1 with
// "Connection: close", over Boost.Beast on an io_context the caller runs (the prober's one thread),
// so thousands of probes cost no thread each: a probe in flight is a socket and a few buffers.
//
// Why a connection per probe rather than keep-alive: the prober walks every pod once per period
// (10 s by default) and at most `max_in_flight` at a time, so a kept connection would sit idle a
// whole period between two uses; keeping one per pod would hold a file descriptor per pod in the
// operator and in every agent (2,000 pods: 2,000 fds, over the common soft limit of 1,024). A
// loopback or pod-network TCP handshake costs far less than that (bench/README.md, "Rollout
// status"). The agent's server (common/http_server.h) closes after answering such a request.
//
// Each call is bounded: one deadline (`timeout`) covers resolve, connect, write and read; the
// body is capped (`max_body_bytes`): an agent that accepts and never answers costs its timeout
// and one socket, never a thread. Why not operator/kube/http_client.h: it is cpprestsdk, whose
// client runs on the process-wide pool the API client uses and spends a thread per blocked call.
//
// Thread safety: Get from the thread running `ioc` (or before it runs); the callback runs there.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "common/status.h"

namespace modelswap::op {

struct ProbeTarget {
  std::string host;  // an IP literal (a pod IP) or a name to resolve (standalone's --agent-url)
  int port = 0;
};

// "http://host:port" or "http://[v6]:port" (an optional path is ignored) -> target.
// kInvalidArgument otherwise.
Result<ProbeTarget> ParseAgentBaseUrl(const std::string& base_url);

// The body of a 200 answer, or kUnavailable naming the agent and what failed (resolve, connect,
// timeout, HTTP status, a body over the cap).
using ProbeCallback = std::function<void(Result<std::string> body)>;

// Starts GET /v1/status to `t`; `done` is called exactly once, on the io_context's thread.
void GetAgentStatus(boost::asio::io_context& ioc, const ProbeTarget& t,
                    std::chrono::milliseconds timeout, size_t max_body_bytes, ProbeCallback done);

}  // namespace modelswap::op
