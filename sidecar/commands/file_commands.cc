// Subcommands that work on the shared volume: write, publish, remove, inspect.
//
// Each prints one JSON line on stdout on success. write and publish, run as Kubernetes Jobs, also
// write that JSON (or {"error", "code"}) to the termination log, where the operator reads it.
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/checksum.h"
#include "common/env.h"
#include "common/log.h"
#include "sidecar/commands/cli.h"
#include "sidecar/msf/reader.h"
#include "sidecar/volume/manifest.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/progress.h"
#include "sidecar/writer/writer.h"

namespace modelswap {
namespace {

using nlohmann::json;

constexpr const char* kDefaultTerminationLog = "/dev/termination-log";

struct VolumeArgs {
  std::string root, model, version, termination_log;
};

void AddVolumeOptions(CLI::App* cmd, VolumeArgs& a) {
  cmd->add_option("--root", a.root, "the model volume's mount point")->required();
  cmd->add_option("--model", a.model, "model name (DNS-1123 label)")->required();
  cmd->add_option("--version", a.version, "version name ([A-Za-z0-9._-]{1,63})")->required();
}

// Kubernetes reads at most 4 KiB of termination message; ours are far smaller.
void WriteTerminationLog(const std::string& path, const json& j) {
  std::string target = path;
  if (target.empty()) {
    if (::access(kDefaultTerminationLog, W_OK) != 0) return;
    target = kDefaultTerminationLog;
  }
  if (FILE* f = std::fopen(target.c_str(), "w")) {
    std::fputs((j.dump() + "\n").c_str(), f);
    std::fclose(f);
  }
}

int Report(const json& j, const std::string& termination_log) {
  std::puts(j.dump().c_str());
  std::fflush(stdout);
  WriteTerminationLog(termination_log, j);
  return kExitOk;
}

int ReportError(const Error& e, const std::string& termination_log) {
  std::fprintf(stderr, "modelswap-sidecar: %s\n", e.ToString().c_str());
  WriteTerminationLog(termination_log,
                      json{{"error", e.message()}, {"code", std::string(CodeName(e.code()))}});
  return e.code() == Code::kAlreadyExists ? kExitAlreadyExists : kExitError;
}

json ManifestJson(const Manifest& m, std::string_view root) {
  return json{{"model", m.model},
              {"version", m.version},
              {"path", JoinPath(JoinPath(root, m.model), m.file)},
              {"bytes", m.bytes},
              {"checksum", m.checksum},
              {"manifest_generation", m.generation}};
}

struct WriteArgs : VolumeArgs {
  uint64_t generate_bytes = 0, seed = 0;
  uint32_t value_bytes = 1024;
  std::string tsv, msf;
  bool publish = false, progress = false, reuse_existing = false;
};

int RunWrite(const WriteArgs& a) {
  WriteRequest req{a.root, a.model, a.version, {}, a.progress || StderrIsTerminal()};
  req.reuse_existing = a.reuse_existing;
  if (!a.tsv.empty())
    req.source = TsvSource{a.tsv};
  else if (!a.msf.empty())
    req.source = MsfSource{a.msf};
  else
    req.source = GenerateSource{a.generate_bytes, a.seed, a.value_bytes};
  auto written = WriteVersion(DefaultEnv(), req);
  if (!written) return ReportError(written.error(), a.termination_log);
  json out{{"model", a.model},
           {"version", a.version},
           {"path", written->path},
           {"bytes", written->bytes},
           {"entries", written->entry_count},
           {"checksum", written->checksum},
           {"seconds", written->seconds}};
  if (written->reused) out["reused"] = true;
  if (a.publish) {
    auto published = PublishVersion(DefaultEnv(), a.root, a.model, a.version);
    if (!published) return ReportError(published.error().Context("publish"), a.termination_log);
    out["manifest_generation"] = published->generation;
  }
  return Report(out, a.termination_log);
}

void AddWrite(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<WriteArgs>();
  CLI::App* cmd = app.add_subcommand("write", "write a new version file (the writer Job)");
  AddVolumeOptions(cmd, *a);
  auto* gen = cmd->add_option("--generate-bytes", a->generate_bytes,
                              "synthetic data of about N bytes (keys \"0\", \"1\", ...)");
  cmd->add_option("--seed", a->seed, "seed of the synthetic filler")->needs(gen);
  cmd->add_option("--value-bytes", a->value_bytes, "synthetic value size (default 1024)")
      ->needs(gen);
  auto* tsv = cmd->add_option("--from-tsv", a->tsv, "key<TAB>value lines");
  auto* msf = cmd->add_option("--from-msf", a->msf, "an .msf built elsewhere (validated first)");
  gen->excludes(tsv, msf);
  tsv->excludes(msf);
  cmd->add_flag("--publish", a->publish, "publish the version once written");
  cmd->add_flag("--progress", a->progress, "progress lines on stderr even when not a terminal");
  cmd->add_flag("--reuse-existing", a->reuse_existing,
                "if the version file exists and verifies, report it instead of failing "
                "(idempotent retries of writer Jobs)");
  cmd->add_option("--termination-log", a->termination_log,
                  "where to write the result JSON (default /dev/termination-log if present)");
  cmd->callback([a, gen, tsv, msf, &ctx] {
    SetupLogging(ctx.log_level);
    if (gen->count() + tsv->count() + msf->count() != 1) {
      throw CLI::ValidationError("SOURCE",
                                 "give exactly one of --generate-bytes, --from-tsv, --from-msf");
    }
    if (gen->count() == 1 && a->generate_bytes == 0) {
      throw CLI::ValidationError("--generate-bytes", "must be greater than 0");
    }
    ctx.exit_code = RunWrite(*a);
  });
}

void AddPublish(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<VolumeArgs>();
  CLI::App* cmd = app.add_subcommand("publish", "verify a version and make it the active one");
  AddVolumeOptions(cmd, *a);
  cmd->add_option("--termination-log", a->termination_log, "where to write the result JSON");
  cmd->callback([a, &ctx] {
    SetupLogging(ctx.log_level);
    auto m = PublishVersion(DefaultEnv(), a->root, a->model, a->version);
    ctx.exit_code = m ? Report(ManifestJson(*m, a->root), a->termination_log)
                      : ReportError(m.error(), a->termination_log);
  });
}

void AddRemove(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<VolumeArgs>();
  CLI::App* cmd = app.add_subcommand("remove", "delete a version file that is not active");
  AddVolumeOptions(cmd, *a);
  cmd->add_option("--termination-log", a->termination_log, "where to write the result JSON");
  cmd->callback([a, &ctx] {
    SetupLogging(ctx.log_level);
    auto removed = RemoveVersionFile(DefaultEnv(), a->root, a->model, a->version);
    ctx.exit_code =
        removed ? Report(json{{"model", a->model}, {"version", a->version}, {"removed", *removed}},
                         a->termination_log)
                : ReportError(removed.error(), a->termination_log);
  });
}

json HeaderJson(const msf::Header& h, const std::string& checksum) {
  json sections = json::array();
  for (const auto& s : h.sections) {
    sections.push_back(json{{"kind", msf::SectionKindName(s.kind)},
                            {"offset", s.offset},
                            {"length", s.length},
                            {"checksum", FormatChecksum(s.checksum)}});
  }
  return json{{"format_version", h.format_version},
              {"model", h.model},
              {"version", h.version},
              {"created_at", FormatRfc3339(h.created_unix_ns)},
              {"created_unix_ns", h.created_unix_ns},
              {"entries", h.entry_count},
              {"bytes", h.file_size},
              {"hash_seed", h.hash_seed},
              {"checksum", checksum},
              {"sections", sections},
              {"verified", true}};
}

void AddInspect(CLI::App& app, CommandContext& ctx) {
  auto path = std::make_shared<std::string>();
  auto header_only = std::make_shared<bool>(false);
  auto keys = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("inspect", "validate an .msf and print its header as JSON");
  cmd->add_option("FILE", *path, "the .msf file")->required();
  cmd->add_flag("--header-only", *header_only, "check only the header (O(1)), not every checksum");
  cmd->add_option("--key", *keys, "also look these keys up (values printed as JSON strings)");
  cmd->callback([path, header_only, keys, &ctx] {
    SetupLogging(ctx.log_level);
    auto level = *header_only ? msf::VerifyLevel::kHeader : msf::VerifyLevel::kFull;
    auto file = OpenModelFile(DefaultEnv(), *path, level);
    if (!file) {
      ctx.exit_code = ReportError(file.error(), "/nonexistent/none");
      return;
    }
    json out = HeaderJson(file->reader.header(), file->reader.checksum());
    out["verified"] = !*header_only;
    if (!keys->empty()) {
      json lookups = json::object();
      for (const std::string& key : *keys) {
        auto value = file->reader.Find(std::string_view(key));
        lookups[key] = value ? json(std::string(*value)) : json(nullptr);
      }
      out["lookups"] = lookups;
    }
    // Binary values are not UTF-8: replace invalid bytes rather than fail to print.
    std::puts(out.dump(2, ' ', false, json::error_handler_t::replace).c_str());
  });
}

}  // namespace

void AddFileCommands(CLI::App& app, CommandContext& ctx) {
  AddWrite(app, ctx);
  AddPublish(app, ctx);
  AddRemove(app, ctx);
  AddInspect(app, ctx);
}

}  // namespace modelswap
