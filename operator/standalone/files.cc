// Standalone backend, the file side: reading ModelVersion files from DIR (scans, settling,
// bad-file handling, deletion grace) and the status files in DIR/.status that carry each
// object's state across restarts. The task side is in backend.cc.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <regex>

#include "operator/api/well_known.h"
#include "operator/kube/resource.h"
#include "operator/standalone/backend.h"
#include "operator/standalone/yaml_json.h"

namespace modelswap::op {
namespace {

bool IsObjectFile(const std::string& name) {
  auto ends = [&](const char* s) {
    std::string_view suf(s);
    return name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return name[0] != '.' && (ends(".yaml") || ends(".yml") || ends(".json"));
}

// metadata.name becomes a file name under .status: DNS-1123 subdomain only, so no '/' or "..".
Status ValidateObjectName(const std::string& name) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  if (name.empty() || name.size() > 253 || !std::regex_match(name, re)) {
    return Fail(Code::kInvalidArgument,
                "metadata.name \"" + name + "\" is not a DNS-1123 subdomain");
  }
  return Ok();
}

// What the API server checks of metadata.annotations (a map of strings; values up to its 256 KiB
// total, far above the 1 MiB file limit's share, so only the types are checked here).
Status ValidateAnnotations(const std::string& name, const Json& doc) {
  const Json a = Field<Json>(doc, {"metadata", "annotations"}, Json::object());
  bool ok = a.is_object() || a.is_null();
  for (auto it = a.begin(); ok && a.is_object() && it != a.end(); ++it)
    ok = it.value().is_string();
  if (ok) return Ok();
  return Fail(Code::kInvalidArgument,
              name + ": metadata.annotations must map names to strings (quote values)");
}

// How long an object's file must stay absent (or without the object) before the object counts
// as deleted: two polling rounds.
constexpr int64_t kDeleteAfterMissingNs = 2'000'000'000;
// How long a file must stay unmodified before it is read (see ScanFile).
constexpr int64_t kSettleNs = 1'000'000'000;

}  // namespace

// Every object a previous operator knew, from its status file, before any object file is read:
// one whose file was deleted while no operator ran is then deleted like any other (its version
// file removed), and one whose file now names another model or version is refused as an edit of
// an immutable field, instead of being taken for a version that was already written.
void StandaloneBackend::LoadSavedObjects() {
  const std::string dir = JoinPath(opts_.dir, ".status");
  auto names = env_->ListDir(dir);
  if (!names) return;  // no status yet
  for (const std::string& entry : *names) {
    constexpr std::string_view kExt = ".json";
    if (entry.size() <= kExt.size() || !entry.ends_with(kExt)) continue;
    const std::string name = entry.substr(0, entry.size() - kExt.size());
    if (!ValidateObjectName(name)) continue;
    auto text = ReadFileToString(env_, JoinPath(dir, entry), 1 << 20);
    Json saved = text ? Json::parse(*text, nullptr, false) : Json();
    if (!saved.is_object() || !saved.contains("metadata") || !saved["metadata"].is_object()) {
      spdlog::warn("standalone: skipping unreadable status file {}", JoinPath(dir, entry));
      continue;
    }
    Json spec = saved.value("spec", Json());
    if (spec.is_string()) spec = Json::parse(spec.get<std::string>(), nullptr, false);
    Object o;
    o.obj = {{"apiVersion", kModelVersions.ApiVersion()},
             {"kind", kModelVersions.kind},
             {"metadata", saved["metadata"]},
             {"spec", spec},
             {"status", saved.value("status", Json::object())}};
    o.obj["metadata"]["name"] = name;
    o.obj["metadata"]["namespace"] = "";
    o.obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
    if (auto mv = ParseModelVersion(o.obj); !mv) {
      spdlog::warn("standalone: skipping status file {}: {}", entry, mv.error().ToString());
      continue;
    }
    o.file = saved.value("file", "");
    o.spec = spec.dump();
    objects_.emplace(name, std::move(o));
  }
}

std::string StandaloneBackend::StatusPath(const std::string& name) const {
  return JoinPath(JoinPath(opts_.dir, ".status"), name + ".json");
}

void StandaloneBackend::WriteError(const std::string& file, const std::string& message) {
  // Scans run every second: a file that stays broken is logged once. Its .error is rewritten
  // each time all the same: the file's mtime says when the operator last looked at it.
  const std::string path = JoinPath(JoinPath(opts_.dir, ".status"), file + ".error");
  if (ReadFileToString(env_, path, 1 << 20).value_or("") != message + "\n") {
    spdlog::error("standalone file={} err=\"{}\"", file, message);
  }
  auto st = WriteFileAtomic(env_, path, message + "\n");
  (void)st;  // the log line above already reports the problem
}

void StandaloneBackend::Scan() {
  auto names = env_->ListDir(opts_.dir);
  if (!names) {
    spdlog::error("standalone: {}", names.error().ToString());
    return;
  }
  std::sort(names->begin(), names->end());
  std::map<std::string, std::string> seen;  // object name -> file
  std::vector<std::string> changed;
  if (first_scan_) {  // every model known from before gets a first reconcile (tasks to adopt)
    first_scan_ = false;
    std::lock_guard lock(mu_);
    for (const auto& [name, o] : objects_)
      changed.push_back(Field<std::string>(o.obj, {"spec", "model"}));
  }
  {
    std::lock_guard lock(mu_);
    newest_known_created_ns_ = 0;
    for (const auto& [name, o] : objects_) {
      newest_known_created_ns_ =
          std::max(newest_known_created_ns_,
                   ParseTime(Field<std::string>(o.obj, {"metadata", "creationTimestamp"})));
    }
  }
  for (const auto& file : *names) {
    if (IsObjectFile(file)) ScanFile(file, &seen, &changed);
  }
  {
    std::lock_guard lock(mu_);
    // Finished tasks of objects that are gone, status file included (deleted while no operator
    // ran): nothing will ask for them again. An object whose file is broken right now keeps its
    // status file, and so its tasks.
    for (auto t = tasks_.begin(); t != tasks_.end();) {
      if (objects_.count(t->second.obs.owner) != 0 ||
          t->second.obs.state == TaskObservation::State::kRunning ||
          env_->Stat(StatusPath(t->second.obs.owner))) {
        ++t;
        continue;
      }
      RemoveTaskFiles(env_, opts_.dir, t->second);
      t = tasks_.erase(t);
    }
    const int64_t now = env_->NowMonotonicNanos();
    for (auto& [name, o] : objects_) {
      if (seen.count(name) != 0) {
        o.missing_since_ns = 0;
        continue;
      }
      if (IsBeingDeleted(o.obj)) continue;
      // Gone for a while, not just now: an editor or a copy may leave a file truncated or
      // briefly absent, and a deletion removes the version's data.
      if (o.missing_since_ns == 0) o.missing_since_ns = now;
      if (now - o.missing_since_ns < kDeleteAfterMissingNs) continue;
      o.obj["metadata"]["deletionTimestamp"] = FormatTime(env_->NowUnixNanos());
      o.obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
      changed.push_back(Field<std::string>(o.obj, {"spec", "model"}));
    }
  }
  for (const auto& model : changed)
    enqueue_(model);
}

void StandaloneBackend::ScanFile(const std::string& file, std::map<std::string, std::string>* seen,
                                 std::vector<std::string>* changed) {
  // What the file defined stays as it was, neither changed nor deleted.
  // Objects restored from a status file older than the "file" field there have an unknown file:
  // any file that cannot be read right now might be theirs, so it keeps them too.
  auto keep_objects = [&] {
    std::lock_guard lock(mu_);
    for (const auto& [name, o] : objects_) {
      if (o.file == file || (o.file.empty() && seen->count(name) == 0)) (*seen)[name] = file;
    }
  };
  std::string path = JoinPath(opts_.dir, file);
  auto info = env_->Stat(path);
  if (!info && info.error().code() == Code::kNotFound) return;  // gone: the object is missing
  // Written within the last second: maybe still mid-write (an editor, a copy), and a truncated
  // file can still parse, with defaults where its last lines were. Read it on a later scan.
  const int64_t age = env_->NowUnixNanos() - (info ? info->mtime_ns : 0);
  if (info && age >= 0 && age < kSettleNs) return keep_objects();
  auto text =
      info ? ReadFileToString(env_, path, 1 << 20) : Result<std::string>(Fail(info.error()));
  if (!text && text.error().code() == Code::kNotFound) return;  // vanished since the stat
  if (!text) {  // too big, unreadable: an error for the user, not a deletion
    keep_objects();
    return WriteError(file, text.error().message());
  }
  // Rewritten between the stat and the read: what was read may be a torn mix; next scan.
  if (auto again = env_->Stat(path); !again || again->mtime_ns != info->mtime_ns ||
                                     again->size != info->size || again->inode != info->inode) {
    return keep_objects();
  }
  auto docs = YamlToJson(*text);
  if (!docs) {  // unparseable as a whole: its objects keep their last good state until fixed
    keep_objects();
    return WriteError(file, docs.error().message());
  }
  std::string problems;
  for (auto& doc : *docs) {
    std::string name = Field<std::string>(doc, {"metadata", "name"});
    Status st = Ok();
    if (Field<std::string>(doc, {"kind"}) != "ModelVersion" ||
        Field<std::string>(doc, {"apiVersion"}) != kModelVersions.ApiVersion()) {
      st = Fail(Code::kInvalidArgument, "not a modelswap.io/v1alpha1 ModelVersion");
    } else if (st = ValidateObjectName(name); st && seen->count(name) != 0) {
      st = Fail(Code::kAlreadyExists, "\"" + name + "\" is also defined in " + (*seen)[name]);
    } else if (st) {
      st = ValidateAnnotations(name, doc);
    }
    if (st) {
      doc["metadata"]["namespace"] = "";
      if (auto mv = ParseModelVersion(doc); !mv) st = Fail(mv.error());
    }
    if (!st) {
      problems += (problems.empty() ? "" : "\n") + st.error().message();
      std::lock_guard lock(mu_);
      if (auto it = objects_.find(name); it != objects_.end() && it->second.file == file) {
        (*seen)[name] = file;  // a bad edit of an existing object keeps its last good state
      }
      continue;
    }
    (*seen)[name] = file;
    std::lock_guard lock(mu_);
    auto it = objects_.find(name);
    if (it != objects_.end() && (Field<std::string>(it->second.obj, {"spec", "model"}) !=
                                     Field<std::string>(doc, {"spec", "model"}) ||
                                 Field<std::string>(it->second.obj, {"spec", "version"}) !=
                                     Field<std::string>(doc, {"spec", "version"}))) {
      problems +=
          (problems.empty() ? "" : "\n") + name + ": spec.model and spec.version are immutable";
      continue;
    }
    AdoptLocked(name, std::move(doc), file, info->mtime_ns, changed);
  }
  std::string err_path = JoinPath(JoinPath(opts_.dir, ".status"), file + ".error");
  if (!problems.empty()) {
    WriteError(file, problems);
  } else if (env_->Stat(err_path)) {
    auto st = env_->Remove(err_path);
    (void)st;  // a stale error file is cosmetic
  }
}

void StandaloneBackend::AdoptLocked(const std::string& name, Json doc, const std::string& file,
                                    int64_t mtime_ns, std::vector<std::string>* changed) {
  std::string spec = doc["spec"].dump();
  // The file's annotations (e.g. modelswap.io/activate-requested-at) are the user's, as in a
  // cluster: taken as they are, a change to them is a change, but not a new generation.
  Json annotations = Field<Json>(doc, {"metadata", "annotations"}, Json::object());
  if (!annotations.is_object()) annotations = Json::object();  // `annotations:` left empty
  auto set_annotations = [&](Json& meta) {
    if (annotations.empty()) {
      meta.erase("annotations");
    } else {
      meta["annotations"] = annotations;
    }
  };
  auto it = objects_.find(name);
  if (it == objects_.end()) {
    // First sight in this process: continue from the persisted state if there is one. A new
    // object's creation time is its file's mtime, so files present together roll out in the
    // order they appeared; but never before an object already known (as an API server stamps a
    // new object after every existing one): a copy that kept an old mtime (cp -p, an rsync)
    // would otherwise take over a (model, version) another object owns, and that object would
    // become the DuplicateVersion (reconciler.cc, MarkDuplicates). 1 µs later: the stamp's unit.
    if (newest_known_created_ns_ != 0 && mtime_ns <= newest_known_created_ns_) {
      mtime_ns = newest_known_created_ns_ + 1'000;
    }
    Json meta = {{"generation", 1},
                 {"creationTimestamp", FormatMicroTime(mtime_ns)},
                 {"finalizers", Json::array()},
                 {"uid", "standalone-" + name}};
    Json status = Json::object();
    std::string old_spec = spec;
    if (auto saved = ReadFileToString(env_, StatusPath(name), 1 << 20)) {
      Json s = Json::parse(*saved, nullptr, false);
      if (s.is_object() && s.contains("metadata")) {
        meta = s["metadata"];
        status = s.value("status", Json::object());
        // Files from before the spec was saved as an object hold it serialised, as a string.
        const Json& saved_spec = s.contains("spec") ? s["spec"] : Json();
        old_spec = saved_spec.is_string()   ? saved_spec.get<std::string>()
                   : saved_spec.is_object() ? saved_spec.dump()
                                            : spec;
      }
    }
    if (old_spec != spec) meta["generation"] = Field<int64_t>(meta, {"generation"}, 1) + 1;
    set_annotations(meta);
    it = objects_.emplace(name, Object{}).first;
    it->second.obj = doc;
    it->second.obj["metadata"] = meta;
    it->second.obj["metadata"]["name"] = name;
    it->second.obj["metadata"]["namespace"] = "";
    it->second.obj["status"] = status;
  } else if (it->second.spec == spec &&
             Field<Json>(it->second.obj, {"metadata", "annotations"}, Json::object()) ==
                 annotations &&
             !IsBeingDeleted(it->second.obj)) {
    if (it->second.file != file) {  // unchanged, but moved to another file (a rename)
      it->second.file = file;
      if (auto st = PersistLocked(name); !st) {  // so a restart ties it to the right file
        spdlog::error("standalone: {}", st.error().ToString());
      }
    }
    return;
  } else {
    Json meta = it->second.obj["metadata"];
    if (it->second.spec != spec) meta["generation"] = Field<int64_t>(meta, {"generation"}) + 1;
    set_annotations(meta);
    meta.erase("deletionTimestamp");  // the file is back
    Json status = it->second.obj["status"];
    it->second.obj = doc;
    it->second.obj["metadata"] = meta;
    it->second.obj["status"] = status;
  }
  it->second.obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
  it->second.file = file;
  it->second.spec = spec;
  changed->push_back(Field<std::string>(doc, {"spec", "model"}));
}

Status StandaloneBackend::PersistLocked(const std::string& name) {
  const Object& o = objects_.at(name);
  Json saved = {{"metadata", o.obj["metadata"]},
                {"spec", o.obj["spec"]},
                {"status", o.obj["status"]},
                {"file", o.file}};
  saved["metadata"].erase("resourceVersion");
  return WriteFileAtomic(env_, StatusPath(name), saved.dump(2) + "\n");
}

}  // namespace modelswap::op
