// Task names, arguments and results; see task.h.
#include "operator/controller/task.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "common/checksum.h"

namespace modelswap::op {
namespace {

// 32 bits of XXH3 (common/checksum.h, the project's one hash): 8 hex digits in a Job name. The
// names need to be deterministic and short (63 characters), not secret.
uint32_t NameHash(std::string_view s) {
  return static_cast<uint32_t>(Xxh3(s));
}

// The shortest text that reads back as `r` ("0.5", not "0.500000"): the writer parses it.
std::string FormatRatio(double r) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, r);
  return ec == std::errc() ? std::string(buf, end) : "0.5";
}

}  // namespace

std::string_view TaskKindName(TaskKind k) {
  switch (k) {
    case TaskKind::kWrite:
      return "write";
    case TaskKind::kPublish:
      return "publish";
    case TaskKind::kRemove:
      return "remove";
  }
  return "";
}

std::optional<TaskKind> TaskKindFromName(std::string_view name) {
  for (TaskKind k : {TaskKind::kWrite, TaskKind::kPublish, TaskKind::kRemove}) {
    if (TaskKindName(k) == name) return k;
  }
  return std::nullopt;
}

std::string TaskName(const std::string& mv_name, TaskKind kind, int64_t generation,
                     const ActivateRequest& request) {
  std::string suffix = "-" + std::string(TaskKindName(kind));
  if (kind == TaskKind::kPublish) suffix += "-" + std::to_string(generation);
  if (kind == TaskKind::kPublish && !request.empty()) {
    // The request value is free text (a timestamp, usually): only its hash fits a name.
    char r[11];
    std::snprintf(r, sizeof(r), "-r%08x",
                  NameHash(std::to_string(request.number) + "#" + request.value));
    suffix += r;
  }
  constexpr size_t kMax = 63;
  if (mv_name.size() + suffix.size() <= kMax) return mv_name + suffix;
  char hash[10];
  std::snprintf(hash, sizeof(hash), "-%08x", NameHash(mv_name));
  std::string prefix = mv_name.substr(0, kMax - suffix.size() - 9);
  while (!prefix.empty() && (prefix.back() == '-' || prefix.back() == '.'))
    prefix.pop_back();
  return prefix + hash + suffix;
}

std::vector<std::string> TaskArgs(const ModelVersion& mv, TaskKind kind, const std::string& root) {
  std::vector<std::string> args{std::string(TaskKindName(kind)),
                                "--root",
                                root,
                                "--model",
                                mv.model,
                                "--version",
                                mv.version};
  if (kind != TaskKind::kWrite) return args;
  const SourceSpec& src = mv.source;
  switch (src.kind) {
    case SourceSpec::Kind::kGenerate:
      args.insert(args.end(), {"--generate-bytes", std::to_string(src.bytes)});
      if (src.has_seed) args.insert(args.end(), {"--seed", std::to_string(src.seed)});
      if (src.value_bytes > 0) {
        args.insert(args.end(), {"--value-bytes", std::to_string(src.value_bytes)});
      }
      break;
    case SourceSpec::Kind::kTsv:
      args.insert(args.end(), {"--from-tsv", root + "/" + src.path});
      break;
    case SourceSpec::Kind::kFile:
      args.insert(args.end(), {"--from-msf", root + "/" + src.path});
      break;
    case SourceSpec::Kind::kDelta:
      // Always --auto-compact: without it a chain at its limit fails the write for good (the
      // source is immutable); with it the writer folds the chain into a full version instead
      // and says so ("compacted"), which status.chain.compacted shows.
      args.insert(args.end(), {"--delta-on", src.delta_base, "--from-tsv", root + "/" + src.path,
                               "--auto-compact", "--max-chain", std::to_string(mv.chain.max_deltas),
                               "--compact-ratio", FormatRatio(mv.chain.compact_ratio)});
      break;
  }
  // The parser keeps a layout base off a delta source (the writer refuses --base with
  // --delta-on); the writer fails, naming it, if the base version is not on the volume.
  if (!src.layout_base.empty() && src.kind != SourceSpec::Kind::kDelta) {
    args.insert(args.end(), {"--base", src.layout_base});
  }
  // A retried writer (pod killed after its rename, Job lost to its TTL) then reports the file it
  // wrote instead of failing with AlreadyExists; a corrupt existing file still fails.
  args.push_back("--reuse-existing");
  if (mv.activate) args.push_back("--publish");
  return args;
}

Result<TaskResult> ParseTaskResult(const std::string& text) {
  // The sidecar prints one JSON line; a termination message may carry a trailing newline or, with
  // FallbackToLogsOnError, log lines before it: use the last line that parses.
  size_t end = text.size();
  while (end > 0) {
    size_t start = text.rfind('\n', end - 1);
    start = start == std::string::npos ? 0 : start + 1;
    std::string_view line(text.data() + start, end - start);
    end = start == 0 ? 0 : start - 1;
    if (line.empty() || line.front() != '{') continue;
    Json doc = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object()) continue;
    TaskResult r;
    r.path = Field<std::string>(doc, {"path"});
    r.bytes = Field<int64_t>(doc, {"bytes"});
    r.checksum = Field<std::string>(doc, {"checksum"});
    r.manifest_generation = Field<int64_t>(doc, {"manifest_generation"});
    r.removed = Field<bool>(doc, {"removed"});
    r.layout = Field<std::string>(doc, {"layout"});
    r.chunks_total = Field<int64_t>(doc, {"chunks", "total"});
    r.chunks_new = Field<int64_t>(doc, {"chunks", "new"});
    r.bytes_new = Field<int64_t>(doc, {"chunks", "bytes_new"});
    r.bytes_reused = Field<int64_t>(doc, {"chunks", "bytes_reused"});
    r.chunks_delta = Field<int64_t>(doc, {"chunks", "chunks_delta"});
    r.stored_bytes_new = Field<int64_t>(doc, {"chunks", "stored_bytes_new"});
    r.delta_base = Field<std::string>(doc, {"delta", "base"});
    r.chain_depth = Field<int>(doc, {"delta", "chainDepth"});
    r.compacted = Field<bool>(doc, {"compacted"});
    for (const auto& l : Field<Json>(doc, {"chain"}, Json::array())) {
      if (l.is_object())
        r.chain.push_back({Field<std::string>(l, {"version"}), Field<int64_t>(l, {"bytes"})});
    }
    r.error = Field<std::string>(doc, {"error"});
    r.code = Field<std::string>(doc, {"code"});
    return r;
  }
  // No JSON: a task whose result is its stderr (standalone mode runs the sidecar without a
  // termination log) says "modelswap-sidecar: <Code>: message" (sidecar/commands, ReportError).
  constexpr std::string_view kPrefix = "modelswap-sidecar: ";
  for (size_t at = text.rfind(kPrefix); at != std::string::npos;
       at = at == 0 ? std::string::npos : text.rfind(kPrefix, at - 1)) {
    if (at != 0 && text[at - 1] != '\n') continue;
    std::string line = text.substr(at + kPrefix.size());
    line = line.substr(0, line.find('\n'));
    const size_t colon = line.find(": ");
    if (colon == std::string::npos || colon == 0 ||
        !std::all_of(line.begin(), line.begin() + colon, [](char c) { return std::isalpha(c); })) {
      continue;  // a code is one word (common/status.h, CodeName)
    }
    TaskResult r;
    r.code = line.substr(0, colon);
    r.error = line.substr(colon + 2);
    return r;
  }
  return Fail(Code::kInvalidArgument, "task result: no JSON object in output");
}

}  // namespace modelswap::op
