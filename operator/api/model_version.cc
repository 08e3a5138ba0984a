// Parsing and validation of ModelVersion objects; see model_version.h.
#include "operator/api/model_version.h"

#include <algorithm>
#include <regex>

#include "operator/api/pod_fields.h"
#include "operator/api/well_known.h"
#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

Error Invalid(const std::string& name, const std::string& msg) {
  return Error(Code::kInvalidArgument, "modelversion " + name + ": " + msg);
}

Result<int64_t> PositiveInt(const Json& obj, const char* key, const std::string& field,
                            int64_t fallback, int64_t min) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return Fail(Code::kInvalidArgument, field + " must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min) return Fail(Code::kInvalidArgument, field + " must be >= " + std::to_string(min));
  return v;
}

Status VersionField(std::string_view v, const std::string& field) {
  static const std::regex re("^[A-Za-z0-9._-]{1,63}$");
  if (!std::regex_match(v.begin(), v.end(), re) || v == "." || v == "..") {
    return Fail(Code::kInvalidArgument,
                field + " \"" + std::string(v) + "\" must match [A-Za-z0-9._-]{1,63}, not . or ..");
  }
  return Ok();
}

// spec.source.delta: {base: <version>, tsv: {path}}. That the base is not spec.version itself is
// checked by the caller, which knows the version. (The field is not called `on`: YAML 1.1
// parsers, kubectl's among them, read an unquoted `on:` key as `true:`.)
Status ParseDelta(const Json& d, SourceSpec* out) {
  if (!d.is_object()) return Fail(Code::kInvalidArgument, "spec.source.delta must be a map");
  auto base = d.find("base");
  if (base == d.end() || base->is_null()) {
    return Fail(Code::kInvalidArgument,
                std::string("spec.source.delta.base is required (the version the delta applies "
                            "to)") +
                    (d.contains("on") || d.contains("true") ? "; the field is base, not on" : ""));
  }
  if (!base->is_string()) {
    return Fail(Code::kInvalidArgument, "spec.source.delta.base must be a string");
  }
  out->delta_base = base->get<std::string>();
  MS_RETURN_IF_ERROR(VersionField(out->delta_base, "spec.source.delta.base"));
  auto tsv = d.find("tsv");
  if (tsv == d.end() || !tsv->is_object()) {
    return Fail(Code::kInvalidArgument,
                "spec.source.delta.tsv is required (a map with the path of the changes: "
                "key<TAB>value upserts, key<TAB>\\N deletions)");
  }
  out->path = Field<std::string>(*tsv, {"path"});
  return ValidateRelativePath(out->path, "spec.source.delta.tsv.path");
}

// spec.chain: {maxDeltas: 1..7, compactRatio: (0, 1]}, both optional.
Status ParseChain(const Json& c, ChainSpec* out) {
  if (c.is_null()) return Ok();
  if (!c.is_object()) return Fail(Code::kInvalidArgument, "spec.chain must be a map");
  MS_ASSIGN_OR_RETURN(int64_t max, PositiveInt(c, "maxDeltas", "spec.chain.maxDeltas", 4, 1));
  if (max > kMaxChainDeltas) {
    return Fail(Code::kInvalidArgument,
                "spec.chain.maxDeltas must be <= " + std::to_string(kMaxChainDeltas) +
                    " (a chain holds at most 8 layers)");
  }
  out->max_deltas = static_cast<int>(max);
  if (auto r = c.find("compactRatio"); r != c.end() && !r->is_null()) {
    if (!r->is_number()) {
      return Fail(Code::kInvalidArgument, "spec.chain.compactRatio must be a number");
    }
    const double v = r->get<double>();
    if (!(v > 0 && v <= 1)) {  // written so that NaN fails too
      return Fail(Code::kInvalidArgument, "spec.chain.compactRatio must be in (0, 1]");
    }
    out->compact_ratio = v;
  }
  return Ok();
}

// spec.source.base: the version whose layout a full write keeps (`write --base`). A delta has
// its own base (spec.source.delta.base) and the writer refuses --base with --delta-on, so the two
// never meet. That it is not spec.version is checked by the caller, which knows the version.
Status ParseLayoutBase(const Json& src, SourceSpec* out) {
  auto base = src.find("base");
  if (base == src.end() || base->is_null()) return Ok();
  if (!base->is_string()) return Fail(Code::kInvalidArgument, "spec.source.base must be a string");
  if (out->kind == SourceSpec::Kind::kDelta) {
    return Fail(Code::kInvalidArgument,
                "spec.source.base does not combine with spec.source.delta (a delta is written on "
                "spec.source.delta.base; base only lays out a generate, tsv or file source)");
  }
  out->layout_base = base->get<std::string>();
  return VersionField(out->layout_base, "spec.source.base");
}

Status ParseSource(const Json& src, SourceSpec* out) {
  if (!src.is_object()) return Fail(Code::kInvalidArgument, "spec.source is required");
  int count = 0;
  if (auto g = src.find("generate"); g != src.end()) {
    ++count;
    out->kind = SourceSpec::Kind::kGenerate;
    if (!g->is_object()) return Fail(Code::kInvalidArgument, "spec.source.generate must be a map");
    MS_ASSIGN_OR_RETURN(out->bytes, PositiveInt(*g, "bytes", "spec.source.generate.bytes", 0, 1));
    if (out->bytes == 0)
      return Fail(Code::kInvalidArgument, "spec.source.generate.bytes is required");
    out->has_seed = g->contains("seed");
    MS_ASSIGN_OR_RETURN(out->seed, PositiveInt(*g, "seed", "spec.source.generate.seed", 0, 0));
    MS_ASSIGN_OR_RETURN(out->value_bytes,
                        PositiveInt(*g, "valueBytes", "spec.source.generate.valueBytes", 0, 1));
  }
  if (auto d = src.find("delta"); d != src.end()) {
    ++count;
    out->kind = SourceSpec::Kind::kDelta;
    MS_RETURN_IF_ERROR(ParseDelta(*d, out));
  }
  for (const char* kind : {"tsv", "file"}) {
    auto it = src.find(kind);
    if (it == src.end()) continue;
    ++count;
    out->kind = std::string(kind) == "tsv" ? SourceSpec::Kind::kTsv : SourceSpec::Kind::kFile;
    std::string field = std::string("spec.source.") + kind + ".path";
    out->path = it->is_object() ? Field<std::string>(*it, {"path"}) : "";
    MS_RETURN_IF_ERROR(ValidateRelativePath(out->path, field));
  }
  if (count != 1) {
    return Fail(Code::kInvalidArgument,
                "spec.source must set exactly one of generate, tsv, file, delta");
  }
  return ParseLayoutBase(src, out);
}

// spec.writer's pod settings, with the rules of pod_fields.h (the CRD schema has the same).
Status ParseWriterPod(const Json& w, WriterSpec* out) {
  if (auto sa = w.find("serviceAccountName"); sa != w.end() && !sa->is_null()) {
    if (!sa->is_string())
      return Fail(Code::kInvalidArgument, "spec.writer.serviceAccountName must be a string");
    MS_RETURN_IF_ERROR(
        ValidateObjectName(sa->get<std::string>(), "spec.writer.serviceAccountName"));
    out->service_account_name = sa->get<std::string>();
  }
  if (auto ps = w.find("imagePullSecrets"); ps != w.end() && !ps->is_null()) {
    if (!ps->is_array())
      return Fail(Code::kInvalidArgument, "spec.writer.imagePullSecrets must be a list");
    std::vector<std::string> names;
    for (size_t i = 0; i < ps->size(); ++i) {
      const std::string field = "spec.writer.imagePullSecrets[" + std::to_string(i) + "].name";
      std::string name = (*ps)[i].is_object() ? Field<std::string>((*ps)[i], {"name"}) : "";
      MS_RETURN_IF_ERROR(ValidateObjectName(name, field));
      names.push_back(std::move(name));
    }
    out->image_pull_secrets = std::move(names);
  }
  if (auto ns = w.find("nodeSelector"); ns != w.end() && !ns->is_null()) {
    if (!ns->is_object())
      return Fail(Code::kInvalidArgument, "spec.writer.nodeSelector must be a map");
    std::map<std::string, std::string> selector;
    for (const auto& [k, v] : ns->items()) {
      const std::string field = "spec.writer.nodeSelector";
      MS_RETURN_IF_ERROR(ValidateLabelKey(k, field));
      if (!v.is_string())
        return Fail(Code::kInvalidArgument, field + "." + k + " must be a string");
      MS_RETURN_IF_ERROR(ValidateLabelValue(v.get<std::string>(), field + "." + k));
      selector[k] = v.get<std::string>();
    }
    out->node_selector = std::move(selector);
  }
  if (auto t = w.find("tolerations"); t != w.end() && !t->is_null()) {
    MS_RETURN_IF_ERROR(ValidateTolerations(*t, "spec.writer.tolerations"));
    out->tolerations = *t;
  }
  return Ok();
}

Status ParseWriter(const Json& w, WriterSpec* out) {
  if (w.is_null()) return Ok();
  if (!w.is_object()) return Fail(Code::kInvalidArgument, "spec.writer must be a map");
  out->image = Field<std::string>(w, {"image"});
  if (auto r = w.find("resources"); r != w.end()) out->resources = *r;
  MS_ASSIGN_OR_RETURN(int64_t backoff,
                      PositiveInt(w, "backoffLimit", "spec.writer.backoffLimit", 2, 0));
  out->backoff_limit = static_cast<int>(backoff);
  MS_ASSIGN_OR_RETURN(
      out->active_deadline_seconds,
      PositiveInt(w, "activeDeadlineSeconds", "spec.writer.activeDeadlineSeconds", 3600, 1));
  MS_ASSIGN_OR_RETURN(int64_t ttl, PositiveInt(w, "ttlSecondsAfterFinished",
                                               "spec.writer.ttlSecondsAfterFinished", 600, 0));
  out->ttl_seconds_after_finished = static_cast<int>(ttl);
  return ParseWriterPod(w, out);
}

Condition ParseCondition(const Json& c) {
  return Condition{
      Field<std::string>(c, {"type"}),           Field<std::string>(c, {"status"}),
      Field<std::string>(c, {"reason"}),         Field<std::string>(c, {"message"}),
      Field<int64_t>(c, {"observedGeneration"}), Field<std::string>(c, {"lastTransitionTime"})};
}

}  // namespace

std::string_view PhaseName(Phase p) {
  switch (p) {
    case Phase::kNone:
      return "";
    case Phase::kPending:
      return "Pending";
    case Phase::kWriting:
      return "Writing";
    case Phase::kReady:
      return "Ready";
    case Phase::kActive:
      return "Active";
    case Phase::kSuperseded:
      return "Superseded";
    case Phase::kFailed:
      return "Failed";
  }
  return "";
}

Phase PhaseFromName(std::string_view n) {
  for (Phase p : {Phase::kPending, Phase::kWriting, Phase::kReady, Phase::kActive,
                  Phase::kSuperseded, Phase::kFailed}) {
    if (PhaseName(p) == n) return p;
  }
  return Phase::kNone;
}

const Condition* ModelVersionStatus::FindCondition(std::string_view type) const {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

bool ModelVersion::HasFinalizer(std::string_view f) const {
  return std::find(finalizers.begin(), finalizers.end(), f) != finalizers.end();
}

Status ValidateModelName(std::string_view name) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
  if (name.empty() || name.size() > 63 || !std::regex_match(name.begin(), name.end(), re)) {
    return Fail(Code::kInvalidArgument, "spec.model \"" + std::string(name) +
                                            "\" is not a DNS-1123 label ([a-z0-9-], <= 63)");
  }
  return Ok();
}

Status ValidateVersionName(std::string_view v) {
  return VersionField(v, "spec.version");
}

Status ValidateRelativePath(std::string_view path, std::string_view field) {
  std::string f(field);
  if (path.empty()) return Fail(Code::kInvalidArgument, f + " is required");
  if (path.size() > 1024) return Fail(Code::kInvalidArgument, f + " is longer than 1024");
  if (path.front() == '/') return Fail(Code::kInvalidArgument, f + " must be relative");
  if (path.find('\0') != std::string_view::npos) {
    return Fail(Code::kInvalidArgument, f + " contains a NUL byte");
  }
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (path.substr(pos, slash - pos) == "..") {
      return Fail(Code::kInvalidArgument, f + " must not contain '..'");
    }
    pos = slash + 1;
  }
  return Ok();
}

Result<ModelVersion> ParseModelVersion(const Json& obj) {
  ModelVersion mv;
  mv.ns = NamespaceOf(obj);
  mv.name = NameOf(obj);
  if (mv.name.empty()) return Fail(Code::kInvalidArgument, "modelversion: metadata.name is empty");
  mv.uid = UidOf(obj);
  mv.resource_version = ResourceVersionOf(obj);
  mv.generation = GenerationOf(obj);
  mv.created_ns =
      std::max<int64_t>(0, ParseTime(Field<std::string>(obj, {"metadata", "creationTimestamp"})));
  mv.deleting = IsBeingDeleted(obj);
  mv.activate_request = AnnotationOf(obj, kAnnotationActivateRequest);
  if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
    if (auto f = m->find("finalizers"); f != m->end() && f->is_array()) {
      for (const auto& s : *f) {
        if (s.is_string()) mv.finalizers.push_back(s.get<std::string>());
      }
    }
  }
  const Json spec = obj.contains("spec") ? obj["spec"] : Json();
  if (!spec.is_object()) return Fail(Invalid(mv.name, "spec is missing"));
  mv.model = Field<std::string>(spec, {"model"});
  mv.version = Field<std::string>(spec, {"version"});
  auto check = [&](Status st) -> Status {
    if (!st) return Fail(st.error().Context("modelversion " + mv.name));
    return Ok();
  };
  MS_RETURN_IF_ERROR(check(ValidateModelName(mv.model)));
  MS_RETURN_IF_ERROR(check(ValidateVersionName(mv.version)));
  mv.claim_name = Field<std::string>(spec, {"storage", "claimName"});
  mv.root = Field<std::string>(spec, {"storage", "root"}, "/models");
  if (mv.root.empty() || mv.root.front() != '/') {
    return Fail(Invalid(mv.name, "spec.storage.root must be an absolute path"));
  }
  MS_RETURN_IF_ERROR(
      check(ParseSource(spec.contains("source") ? spec["source"] : Json(), &mv.source)));
  if (mv.source.kind == SourceSpec::Kind::kDelta && mv.source.delta_base == mv.version) {
    return Fail(Invalid(mv.name, "spec.source.delta.base is spec.version (\"" + mv.version +
                                     "\"): a delta applies to another version of the model"));
  }
  if (!mv.source.layout_base.empty() && mv.source.layout_base == mv.version) {
    return Fail(Invalid(mv.name, "spec.source.base is spec.version (\"" + mv.version +
                                     "\"): the layout base is an earlier version of the model"));
  }
  MS_RETURN_IF_ERROR(check(ParseChain(spec.contains("chain") ? spec["chain"] : Json(), &mv.chain)));
  mv.activate = Field<bool>(spec, {"activate"}, true);
  auto retain = PositiveInt(spec, "retain", "spec.retain", 3, 1);
  if (!retain) return Fail(retain.error().Context("modelversion " + mv.name));
  mv.retain = static_cast<int>(*retain);
  MS_RETURN_IF_ERROR(
      check(ParseWriter(spec.contains("writer") ? spec["writer"] : Json(), &mv.writer)));
  if (obj.contains("status")) mv.status = ParseStatus(obj["status"]);
  mv.raw = std::make_shared<const Json>(obj);
  return mv;
}

ModelVersionStatus ParseStatus(const Json& st) {
  ModelVersionStatus s;
  if (!st.is_object()) return s;
  s.phase = PhaseFromName(Field<std::string>(st, {"phase"}));
  s.observed_generation = Field<int64_t>(st, {"observedGeneration"});
  s.message = Field<std::string>(st, {"message"});
  s.job_name = Field<std::string>(st, {"jobName"});
  s.file = Field<std::string>(st, {"file"});
  s.bytes = Field<int64_t>(st, {"bytes"});
  s.checksum = Field<std::string>(st, {"checksum"});
  s.manifest_generation = Field<int64_t>(st, {"manifestGeneration"});
  s.published_generation = Field<int64_t>(st, {"publishedGeneration"});
  s.last_handled_activate_request = Field<std::string>(st, {"lastHandledActivateRequest"});
  s.activate_requests_handled = Field<int64_t>(st, {"activateRequestsHandled"});
  s.file_removed = Field<bool>(st, {"fileRemoved"});
  s.layout = Field<std::string>(st, {"layout"});
  s.chunks_total = Field<int64_t>(st, {"chunks", "total"});
  s.chunks_new = Field<int64_t>(st, {"chunks", "new"});
  s.bytes_new = Field<int64_t>(st, {"chunks", "bytesNew"});
  s.bytes_reused = Field<int64_t>(st, {"chunks", "bytesReused"});
  s.chunks_delta = Field<int64_t>(st, {"chunks", "delta"});
  s.stored_bytes_new = Field<int64_t>(st, {"chunks", "storedBytesNew"});
  if (auto c = st.find("chain"); c != st.end() && c->is_object()) {
    s.chain_length = Field<int>(*c, {"length"});
    s.chain_compacted = Field<bool>(*c, {"compacted"});
    for (const auto& l : Field<Json>(*c, {"layers"}, Json::array())) {
      s.chain_layers.push_back({Field<std::string>(l, {"version"}), Field<int64_t>(l, {"bytes"})});
    }
  }
  s.pods_loaded = Field<int>(st, {"pods", "loaded"});
  s.pods_total = Field<int>(st, {"pods", "total"});
  s.pods_per_pod_staging = Field<int>(st, {"pods", "perPodStaging"});
  if (auto p = st.find("progress"); p != st.end() && p->is_object()) {
    s.progress = WriteProgress{
        Field<int64_t>(*p, {"bytesWritten"}), Field<int64_t>(*p, {"bytesTotal"}),
        Field<std::string>(*p, {"percent"}), Field<std::string>(*p, {"lastUpdateTime"})};
  }
  if (auto c = st.find("conditions"); c != st.end() && c->is_array()) {
    for (const auto& cond : *c)
      s.conditions.push_back(ParseCondition(cond));
  }
  return s;
}

Json StatusToJson(const ModelVersionStatus& s) {
  Json j = Json::object();
  if (s.phase != Phase::kNone) j["phase"] = PhaseName(s.phase);
  j["observedGeneration"] = s.observed_generation;
  if (!s.message.empty()) j["message"] = s.message;
  if (!s.job_name.empty()) j["jobName"] = s.job_name;
  if (!s.file.empty()) j["file"] = s.file;
  if (s.bytes != 0) j["bytes"] = s.bytes;
  if (!s.checksum.empty()) j["checksum"] = s.checksum;
  if (s.manifest_generation != 0) j["manifestGeneration"] = s.manifest_generation;
  if (s.published_generation != 0) j["publishedGeneration"] = s.published_generation;
  if (!s.last_handled_activate_request.empty()) {
    j["lastHandledActivateRequest"] = s.last_handled_activate_request;
  }
  if (s.activate_requests_handled != 0) j["activateRequestsHandled"] = s.activate_requests_handled;
  if (s.file_removed) j["fileRemoved"] = true;
  if (!s.layout.empty()) j["layout"] = s.layout;
  if (s.chunks_total != 0) {
    j["chunks"] = {{"total", s.chunks_total},
                   {"new", s.chunks_new},
                   {"bytesNew", s.bytes_new},
                   {"bytesReused", s.bytes_reused}};
    // Only when reported, so statuses from writers that predate them stay byte for byte.
    if (s.chunks_delta != 0) j["chunks"]["delta"] = s.chunks_delta;
    if (s.stored_bytes_new != 0) j["chunks"]["storedBytesNew"] = s.stored_bytes_new;
  }
  if (s.chain_length != 0 || !s.chain_layers.empty() || s.chain_compacted) {
    Json layers = Json::array();
    for (const auto& l : s.chain_layers)
      layers.push_back({{"version", l.version}, {"bytes", l.bytes}});
    j["chain"] = {{"length", s.chain_length}, {"layers", std::move(layers)}};
    if (s.chain_compacted) j["chain"]["compacted"] = true;
  }
  j["pods"] = {{"loaded", s.pods_loaded}, {"total", s.pods_total}};
  // Only when some pod falls back, so statuses written before the field stay byte for byte.
  if (s.pods_per_pod_staging > 0) j["pods"]["perPodStaging"] = s.pods_per_pod_staging;
  if (s.progress) {
    j["progress"] = {{"bytesWritten", s.progress->bytes_written},
                     {"bytesTotal", s.progress->bytes_total},
                     {"percent", s.progress->percent},
                     {"lastUpdateTime", s.progress->last_update_time}};
  }
  Json conds = Json::array();
  for (const auto& c : s.conditions) {
    conds.push_back({{"type", c.type},
                     {"status", c.status},
                     {"reason", c.reason},
                     {"message", c.message},
                     {"observedGeneration", c.observed_generation},
                     {"lastTransitionTime", c.last_transition_time}});
  }
  j["conditions"] = std::move(conds);
  return j;
}

}  // namespace modelswap::op
