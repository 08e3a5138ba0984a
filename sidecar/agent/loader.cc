// The load pipeline: stage -> map -> identity checks -> prefault -> full verify.
#include "sidecar/agent/loader.h"

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/agent/prefault.h"
#include "sidecar/agent/sigbus_guard.h"
#include "sidecar/agent/stager.h"
#include "sidecar/msf/reader.h"

namespace modelswap::agent {
namespace {

double Since(Env* env, int64_t start) {
  return static_cast<double>(env->NowMonotonicNanos() - start) / 1e9;
}

// The header must describe exactly the file the manifest published.
Status CheckIdentity(const msf::Header& h, const Manifest& m, const std::string& path) {
  uint64_t want = 0;
  if (!ParseChecksum(m.checksum, &want)) {
    return Fail(Code::kCorruption, "manifest checksum \"" + m.checksum + "\" is malformed");
  }
  if (h.header_checksum != want) {
    return Fail(Code::kCorruption, path + ": checksum " + FormatChecksum(h.header_checksum) +
                                       " differs from the manifest's " + m.checksum);
  }
  if (h.file_size != m.bytes) {
    return Fail(Code::kCorruption, path + ": " + std::to_string(h.file_size) +
                                       " bytes, manifest says " + std::to_string(m.bytes));
  }
  if (h.model != m.model || h.version != m.version) {
    return Fail(Code::kCorruption, path + ": header names " + h.model + "/" + h.version);
  }
  return Ok();
}

}  // namespace

Result<std::shared_ptr<LoadedVersion>> LoadVersion(Env* env, const std::string& root,
                                                   const Manifest& m, const LoadOptions& opt) {
  MS_RETURN_IF_ERROR(ValidateModelName(m.model));
  MS_RETURN_IF_ERROR(ValidateVersionName(m.version));
  auto v = std::make_shared<LoadedVersion>();
  v->manifest = m;
  v->source_path = VersionPath(root, m.model, m.version);
  v->mapped_path = v->source_path;

  int64_t t = env->NowMonotonicNanos();
  if (!opt.stage_dir.empty()) {
    StageRequest req{v->source_path, opt.stage_dir, m.model, m.version, m.bytes, opt.stage_threads};
    MS_ASSIGN_OR_RETURN(v->mapped_path, StageFile(env, req));
    v->timings.stage_seconds = Since(env, t);
  }

  t = env->NowMonotonicNanos();
  auto mapping = env->MapReadOnly(v->mapped_path);
  if (!mapping) return Fail(mapping.error().Context("map"));
  v->mapping = std::move(*mapping);
  std::span<const std::byte> bytes = v->mapping->bytes();
  // The header is a single page: a file truncated right now can still fault on it, so even
  // this read is guarded.
  msf::Header header;
  MS_RETURN_IF_ERROR(RunSigbusGuarded("read header", [&]() -> Status {
    auto h = msf::ParseHeader(bytes);
    if (!h) return Fail(h.error().Context(v->mapped_path));
    header = std::move(*h);
    return Ok();
  }));
  MS_RETURN_IF_ERROR(CheckIdentity(header, m, v->mapped_path));
  v->checksum = header.header_checksum;
  v->entry_count = header.entry_count;
  v->timings.map_seconds = Since(env, t);

  MS_ASSIGN_OR_RETURN(PrefaultResult pre, Prefault(env, bytes, opt.prefault_threads));
  v->prefault_method = pre.method;
  v->timings.prefault_seconds = pre.seconds;

  t = env->NowMonotonicNanos();
  MS_RETURN_IF_ERROR(RunSigbusGuarded("verify", [&]() -> Status {
    auto st = msf::VerifyContents(bytes, header);
    if (!st) return Fail(st.error().Context(v->mapped_path));
    return Ok();
  }));
  v->timings.verify_seconds = Since(env, t);
  return v;
}

}  // namespace modelswap::agent
