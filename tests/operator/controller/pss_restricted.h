// A checker for the Pod Security Standards' "restricted" profile (which includes "baseline"), as
// kubernetes.io/docs/concepts/security/pod-security-standards lists its controls, for the pods
// and containers the operator builds (writer Jobs, the injected agent). It returns one line per
// violated control naming the field, so a test shows what broke, not only that something did.
// Windows-only and AppArmor annotation controls are left out: nothing here sets them.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "operator/kube/object.h"

namespace modelswap::op::testing {

// One container against the restricted controls. `pod_sc`: the pod's securityContext, whose
// runAsNonRoot, runAsUser and seccompProfile the container inherits when it does not set them.
inline std::vector<std::string> RestrictedContainerViolations(const Json& c, const Json& pod_sc) {
  std::vector<std::string> out;
  const std::string at = "container " + c.value("name", "?") + ": ";
  const Json sc = c.value("securityContext", Json::object());
  auto eff = [&](const char* k) { return sc.contains(k) ? sc[k] : pod_sc.value(k, Json()); };
  if (sc.value("privileged", false)) out.push_back(at + "privileged");
  if (sc.value("allowPrivilegeEscalation", true)) {
    out.push_back(at + "allowPrivilegeEscalation must be set to false");
  }
  if (Json v = eff("runAsNonRoot"); !(v.is_boolean() && v.get<bool>())) {
    out.push_back(at + "runAsNonRoot must be true (pod or container)");
  }
  if (Json v = eff("runAsUser"); v.is_number() && v.get<int64_t>() == 0) {
    out.push_back(at + "runAsUser must not be 0");
  }
  std::string seccomp =
      eff("seccompProfile").is_object() ? eff("seccompProfile").value("type", "") : "";
  if (seccomp != "RuntimeDefault" && seccomp != "Localhost") {
    out.push_back(at + "seccompProfile.type must be RuntimeDefault or Localhost");
  }
  const Json caps = sc.value("capabilities", Json::object());
  bool drops_all = false;
  for (const auto& d : caps.value("drop", Json::array()))
    drops_all |= d == "ALL";
  if (!drops_all) out.push_back(at + "capabilities.drop must include ALL");
  for (const auto& a : caps.value("add", Json::array())) {
    if (a != "NET_BIND_SERVICE") out.push_back(at + "capabilities.add " + a.dump());
  }
  for (const auto& p : c.value("ports", Json::array())) {
    if (p.value("hostPort", 0) != 0) out.push_back(at + "hostPort");
  }
  if (sc.contains("procMount") && sc["procMount"] != "Default") out.push_back(at + "procMount");
  const Json se = sc.value("seLinuxOptions", Json::object());
  static const std::set<std::string> kSeTypes = {"", "container_t", "container_init_t",
                                                 "container_kvm_t", "container_engine_t"};
  if (se.contains("user") || se.contains("role") || kSeTypes.count(se.value("type", "")) == 0) {
    out.push_back(at + "seLinuxOptions");
  }
  return out;
}

// A pod spec: pod-level controls, then every container (init, regular, ephemeral).
inline std::vector<std::string> RestrictedViolations(const Json& spec) {
  std::vector<std::string> out;
  for (const char* host : {"hostNetwork", "hostPID", "hostIPC"}) {
    if (spec.value(host, false)) out.push_back(std::string("pod: ") + host);
  }
  static const std::set<std::string> kVolumeTypes = {
      "configMap", "csi",   "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
      "projected", "secret"};
  for (const auto& v : spec.value("volumes", Json::array())) {
    for (const auto& [k, _] : v.items()) {
      if (k != "name" && kVolumeTypes.count(k) == 0) out.push_back("pod: volume type " + k);
    }
  }
  const Json pod_sc = spec.value("securityContext", Json::object());
  static const std::set<std::string> kSafeSysctls = {
      "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
      "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
      "net.ipv4.ping_group_range"};
  for (const auto& s : pod_sc.value("sysctls", Json::array())) {
    if (kSafeSysctls.count(s.value("name", "")) == 0) out.push_back("pod: sysctl");
  }
  if (pod_sc.contains("seccompProfile") &&
      pod_sc["seccompProfile"].value("type", "") == "Unconfined")
    out.push_back("pod: seccompProfile Unconfined");
  if (pod_sc.value("runAsNonRoot", true) == false) out.push_back("pod: runAsNonRoot false");
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    for (const auto& c : spec.value(list, Json::array())) {
      for (auto& v : RestrictedContainerViolations(c, pod_sc))
        out.push_back(std::move(v));
    }
  }
  return out;
}

}  // namespace modelswap::op::testing
