// ModelVersion (modelswap.io/v1alpha1) as a value: spec, status and the metadata the reconciler
// needs, parsed from the JSON the API server (or a standalone YAML file) holds.
//
// Parsing validates with the same rules as the CRD schema (crds/modelversion.yaml) because in
// standalone mode no API server checks the files first: a bad object gets an error naming the
// field and the rule. Thread safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "operator/kube/object.h"

namespace modelswap::op {

enum class Phase { kNone, kPending, kWriting, kReady, kActive, kSuperseded, kFailed };
std::string_view PhaseName(Phase p);
Phase PhaseFromName(std::string_view name);

struct Condition {
  std::string type;    // Written | Active | Loaded
  std::string status;  // "True" | "False" | "Unknown"
  std::string reason;
  std::string message;
  int64_t observed_generation = 0;
  std::string last_transition_time;
  bool operator==(const Condition&) const = default;
};

// A running writer's progress, as its pod reports it (operator/controller/writer_progress.h).
struct WriteProgress {
  int64_t bytes_written = 0;
  int64_t bytes_total = 0;       // the source's size (generate: spec bytes); 0 = unknown
  std::string percent;           // "37%": what the Progress printer column shows
  std::string last_update_time;  // when the operator last wrote it (RFC 3339)
  bool operator==(const WriteProgress&) const = default;
};

// One layer of a version's chain (status.chain.layers).
struct ChainLayerStatus {
  std::string version;
  int64_t bytes = 0;
  bool operator==(const ChainLayerStatus&) const = default;
};

struct ModelVersionStatus {
  Phase phase = Phase::kNone;
  int64_t observed_generation = 0;
  std::string message;
  std::string job_name;
  std::string file;
  int64_t bytes = 0;
  std::string checksum;
  int64_t manifest_generation = 0;
  int64_t published_generation = 0;
  // The value of the activate-requested-at annotation last acted on (or refused); a different
  // value is a new request. Kept in status so a restarted operator does not act on it twice.
  std::string last_handled_activate_request;
  int64_t activate_requests_handled = 0;  // how many requests were handled (numbers requests)
  bool file_removed = false;
  // What the writer stored, from its result: layout "chunked" or "whole-file" ("" = an older
  // writer that did not say); for a chunked version, its chunks and how many bytes were new to
  // the volume's chunk store (sidecar/writer/chunked_upload.h).
  std::string layout;
  int64_t chunks_total = 0, chunks_new = 0, bytes_new = 0, bytes_reused = 0;
  // Of chunks_new, those stored as delta chunks against the layout base's chunks (spec.source.
  // base), and the compressed bytes the new chunks take in the store, whole and delta: what the
  // version cost the volume (0 from a writer that did not report them).
  int64_t chunks_delta = 0, stored_bytes_new = 0;
  // The version's chain as its writer reported it (status.chain): layers newest first, the
  // version itself first and its full base last (a full version is a chain of itself; empty
  // from an older writer). chain_length is the layer count (a delta whose writer reported no
  // layers: its chainDepth + 1). chain_compacted: the writer folded a chain into this FULL
  // version instead of writing a delta (--auto-compact).
  std::vector<ChainLayerStatus> chain_layers;
  int chain_length = 0;
  bool chain_compacted = false;
  int pods_loaded = 0;
  int pods_total = 0;
  // Of pods_total, the pods that serve from per-pod staging instead of the node cache: their
  // modelswap.io/node-cache annotation says "disabled: ..." (operator/webhook/node_cache_plan.h;
  // each also gets a NodeCacheDisabled Event). status.pods.perPodStaging.
  int pods_per_pod_staging = 0;
  // Set while the write task runs and its pod reports progress; cleared once it finishes.
  std::optional<WriteProgress> progress;
  std::vector<Condition> conditions;
  bool operator==(const ModelVersionStatus&) const = default;

  bool written() const { return !checksum.empty() || !file.empty(); }
  const Condition* FindCondition(std::string_view type) const;
};

struct SourceSpec {
  // kDelta: only the changes (upserts and `key<TAB>\N` tombstones, a TSV) on the version
  // `delta_base` of the same model (docs/design.md, "Delta versions").
  enum class Kind { kGenerate, kTsv, kFile, kDelta } kind = Kind::kGenerate;
  int64_t bytes = 0;
  int64_t seed = 0;
  bool has_seed = false;
  int64_t value_bytes = 0;
  std::string path;        // tsv/file/delta.tsv: relative to the storage root
  std::string delta_base;  // kDelta: the base version's name (never spec.version)
  // spec.source.base, generate/tsv/file only: an earlier version of the model whose layout the
  // new one keeps (`write --base`), so unchanged rows keep their chunks and changed chunks may be
  // stored as delta chunks against its. "" = none; never spec.version.
  std::string layout_base;
};

// spec.chain: how long a delta's chain may grow before its writer compacts it into a full
// version instead (write --auto-compact --max-chain --compact-ratio, sidecar/writer/writer.h).
// Only read for a delta source.
inline constexpr int kMaxChainDeltas = 7;  // sidecar/msf/format.h: a chain holds 8 layers
struct ChainSpec {
  int max_deltas = 4;          // 1..7 (the format's limit: 8 layers)
  double compact_ratio = 0.5;  // (0, 1]: deltas' bytes over the base's bytes that compact
};

struct WriterSpec {
  std::string image;  // "" = the operator's --sidecar-image
  Json resources;     // corev1 ResourceRequirements, passed through
  int backoff_limit = 2;
  int64_t active_deadline_seconds = 3600;
  int ttl_seconds_after_finished = 600;
  // Pod settings of the writer Job. Unset: the operator's --writer-* flags; set, each replaces
  // the flag's value whole (an empty list clears it), so one ModelVersion can move its writer to
  // other nodes or credentials without the operator's defaults leaking in.
  std::optional<std::string> service_account_name;
  std::optional<std::vector<std::string>> image_pull_secrets;  // Secret names
  std::optional<std::map<std::string, std::string>> node_selector;
  std::optional<Json> tolerations;  // corev1 tolerations, validated (pod_fields.h)
};

struct ModelVersion {
  // metadata
  std::string ns, name, uid, resource_version;
  int64_t generation = 0;
  int64_t created_ns = 0;  // creationTimestamp (unix ns); versions roll in this order
  bool deleting = false;
  std::vector<std::string> finalizers;
  // spec
  std::string model, version;
  std::string claim_name;
  std::string root = "/models";
  SourceSpec source;
  ChainSpec chain;
  bool activate = true;
  // metadata.annotations["modelswap.io/activate-requested-at"]: "" = none. An annotation, not a
  // spec field, so asking twice needs no spec edit and survives any relist (see reconciler.h).
  std::string activate_request;
  int retain = 3;
  WriterSpec writer;
  ModelVersionStatus status;
  // Not part of the object: the newest generation a watch event showed with spec.activate false
  // (0 = none seen by this process). Filled by the backend; lets a quick false -> true flip
  // count as a rollback request even if no reconcile ran while it was false.
  int64_t deactivated_generation = 0;
  // The object as read, so writes keep every field the operator does not know.
  std::shared_ptr<const Json> raw;

  bool HasFinalizer(std::string_view f) const;
};

// Validation shared with the CRD and the sidecar's CLI.
Status ValidateModelName(std::string_view name);
Status ValidateVersionName(std::string_view version);
Status ValidateRelativePath(std::string_view path, std::string_view field);

Result<ModelVersion> ParseModelVersion(const Json& obj);
ModelVersionStatus ParseStatus(const Json& status);
Json StatusToJson(const ModelVersionStatus& s);

}  // namespace modelswap::op
