// Write progress polling; see writer_progress.h.
#include "operator/controller/writer_progress.h"

#include <cpprest/http_client.h>
#include <spdlog/spdlog.h>

#include "operator/api/well_known.h"
#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

Result<std::string> HttpGetProgress(const std::string& base_url) {
  try {
    web::http::client::http_client_config cfg;
    cfg.set_timeout(std::chrono::seconds(2));
    web::http::client::http_client client(base_url, cfg);
    auto resp = client.request("GET", "/v1/progress").get();
    std::string body = resp.extract_string(true).get();
    if (resp.status_code() != 200) {
      return Fail(Code::kUnavailable,
                  "writer " + base_url + ": HTTP " + std::to_string(resp.status_code()));
    }
    return body;
  } catch (const std::exception& e) {
    return Fail(Code::kUnavailable, "writer " + base_url + ": " + e.what());
  }
}

bool SameProgress(const TaskProgress& a, const TaskProgress& b) {
  return a.written == b.written && a.total == b.total;
}

}  // namespace

Result<TaskProgress> ParseWriterProgress(const std::string& body) {
  Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("bytes_written") ||
      !doc["bytes_written"].is_number_integer()) {
    return Fail(Code::kInvalidArgument, "writer progress: no integer \"bytes_written\"");
  }
  TaskProgress p{Field<int64_t>(doc, {"bytes_written"}), Field<int64_t>(doc, {"bytes_total"})};
  if (p.written < 0 || p.total < 0) {
    return Fail(Code::kInvalidArgument, "writer progress: negative byte counts");
  }
  return p;
}

std::string WriterProgressUrl(const Json& pod) {
  std::string ip = Field<std::string>(pod, {"status", "podIP"});
  if (ip.empty() || Field<std::string>(pod, {"status", "phase"}) != "Running" ||
      LabelOf(pod, kLabelTask) != "write") {
    return "";
  }
  int port = 0;
  for (const auto& c : Field<Json>(pod, {"spec", "containers"}, Json::array())) {
    for (const auto& p : Field<Json>(c, {"ports"}, Json::array())) {
      if (Field<std::string>(p, {"name"}) == "progress") port = Field<int>(p, {"containerPort"});
    }
  }
  if (port <= 0) return "";  // an operator with --writer-progress-port 0 made it
  if (ip.find(':') != std::string::npos) ip = "[" + ip + "]";
  return "http://" + ip + ":" + std::to_string(port);
}

WriterProgressProber::WriterProgressProber(Store* writer_pods, OnChange on_change,
                                           std::chrono::milliseconds interval, Fetch fetch)
    : pods_(writer_pods),
      on_change_(std::move(on_change)),
      interval_(interval),
      fetch_(fetch ? std::move(fetch) : Fetch(HttpGetProgress)) {}

WriterProgressProber::~WriterProgressProber() {
  Stop();
}

void WriterProgressProber::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void WriterProgressProber::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void WriterProgressProber::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    ProbeOnce();
    lock.lock();
    cv_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

void WriterProgressProber::ProbeOnce() {
  std::map<std::string, TaskProgress> fresh;
  std::map<std::string, std::string> model_of;  // job key -> model key
  for (const ObjectPtr& pod : pods_->List()) {
    std::string url = WriterProgressUrl(*pod);
    std::string job = LabelOf(*pod, "job-name");
    if (url.empty() || job.empty() || IsBeingDeleted(*pod)) continue;
    const std::string key = KeyOf(NamespaceOf(*pod), job);
    model_of[key] = KeyOf(NamespaceOf(*pod), LabelOf(*pod, kLabelModel));
    auto body = fetch_(url);
    auto p = body ? ParseWriterProgress(*body) : Result<TaskProgress>(Fail(body.error()));
    if (!p) {
      spdlog::debug("writer progress pod={} err=\"{}\"", KeyOf(*pod), p.error().message());
      continue;  // a retried pod of the same Job may answer; else the last figure stays
    }
    // A Job's retried pod starts over: the newest figure of any of its pods is as good as any.
    fresh[key] = *p;
  }
  std::vector<std::string> changed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, p] : fresh) {
      auto it = progress_.find(key);
      if (it == progress_.end() || !SameProgress(it->second, p)) changed.push_back(model_of[key]);
      progress_[key] = p;
    }
    // Jobs whose pods are gone (finished, deleted) are forgotten; their results say the rest.
    std::erase_if(progress_, [&](const auto& kv) {
      return fresh.count(kv.first) == 0 && model_of.count(kv.first) == 0;
    });
  }
  for (const auto& key : changed)
    on_change_(key);
}

std::optional<TaskProgress> WriterProgressProber::For(const std::string& job_key) const {
  std::lock_guard lock(mu_);
  auto it = progress_.find(job_key);
  if (it == progress_.end()) return std::nullopt;
  return it->second;
}

}  // namespace modelswap::op
