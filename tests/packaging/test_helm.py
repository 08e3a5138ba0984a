"""The chart rendered by real Helm 3 ($MODELSWAP_HELM, fetched by scripts/fetch-helm.sh; ctest's
packaging_fetch_helm fixture runs it). A missing helm fails these tests: it is never skipped.

- `helm lint --strict` passes for every values set in VALUE_SETS, and values.schema.json makes
  helm refuse mistyped, out-of-range and unknown values (BAD_VALUES), and Kubernetes < 1.25;
- every rendered object has apiVersion/kind/metadata, a DNS-safe name, a namespace exactly when
  its kind is namespaced (the release's, or storage.pvc.namespace for the PVC), the chart's labels,
  and the fields of its kind that we rely on (check_<Kind> below);
- the objects agree with each other: Service selectors and targetPorts hit the operator pods'
  labels and ports, the webhook configuration names the rendered Service, RBAC binds the
  ServiceAccount the pods run as to the rendered roles and names the rendered Secret and
  webhook configuration, the ServiceMonitor selects the metrics Service only, the PDB and
  NetworkPolicy select the operator pods;
- the operator pod meets Pod Security "restricted";
- each values key changes what it should (replicas 1: no PDB; monitoring: ServiceMonitor,
  PodMonitor and metrics Service; networkPolicy: the policy's ports; ...);
- every flag the Deployment passes is declared by operator/main.cc, except test_chart.py's
  PENDING_FLAGS, which appear only when their writer.* value is set.

kubectl is not used: without an API server it cannot map a manifest's kind (discovery), so
`kubectl create --dry-run=client` checks nothing offline; the per-kind checks below do instead.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402
from test_chart import PENDING_FLAGS  # noqa: E402

HELM = os.environ.get("MODELSWAP_HELM", "")
RELEASE, NAMESPACE = "ms", "modelswap-system"
FULLNAME = "ms-modelswap"

VALUE_SETS = {
    "defaults": {},
    "cert-manager": {"webhook": {"certificates": {"existingSecret": "modelswap-webhook-cert"}}},
    "own-secret-name": {"webhook": {"certificates": {"secretName": "hook-tls"}}},
    "existing-pvc": {"webhook": {"injection": {"claimName": "team-models"}}},
    "blobfuse-pvc": {"storage": {"blobfuse": {"createStorageClass": True, "containerName": "models"},
                                 "pvc": {"create": True, "namespace": "serving"}}},
    "single-replica": {"operator": {"replicas": 1}},
    "three-replicas": {"operator": {"replicas": 3, "podDisruptionBudget": {"minAvailable": 2}}},
    "monitoring": {"monitoring": {"enabled": True, "agents": {"enabled": True},
                                  "labels": {"release": "kube-prometheus-stack"}}},
    "azure-monitor": {"monitoring": {"enabled": True, "apiVersion": "azmonitoring.coreos.com/v1"}},
    "network-policy": {"networkPolicy": {"enabled": True}},
    "network-policy-strict": {
        "operator": {"watchNamespace": "serving"},
        "monitoring": {"enabled": True},
        "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["20.1.2.3/32"]},
                          "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": "monitoring"}}}]}},
    "webhook-disabled": {"webhook": {"enabled": False}, "networkPolicy": {"enabled": True}},
    "workload-identity": {
        "serviceAccount": {"annotations": {"azure.workload.identity/client-id": "0000-1111"}},
        "operator": {"podLabels": {"azure.workload.identity/use": "true"}}},
    "existing-service-account": {"serviceAccount": {"create": False, "name": "platform-sa"}},
    "operator-extras": {"operator": {"priorityClassName": "platform-critical",
                                     "extraArgs": ["--probe-interval=30"],
                                     "imagePullSecrets": [{"name": "acr-pull"}],
                                     "tolerations": [{"key": "CriticalAddonsOnly",
                                                      "operator": "Exists"}]},
                        "sidecar": {"image": {"pullPolicy": "Always"}}},
    "writer-settings": {"writer": {"serviceAccountName": "model-writer",
                                   "imagePullSecrets": [{"name": "acr-pull"}],
                                   "nodeSelector": {"kubernetes.azure.com/agentpool": "writers"},
                                   "tolerations": [{"key": "pool", "operator": "Equal",
                                                    "value": "writers", "effect": "NoSchedule"}]}},
    "writer-progress": {"writer": {"progressPort": 9000}, "networkPolicy": {"enabled": True}},
    "writer-progress-off": {"writer": {"progressPort": 0}, "networkPolicy": {"enabled": True}},
    "no-crd": {"crds": {"install": False}},
}

# (--set argument or values dict, text helm's error must contain)
BAD_VALUES = [
    ("operator.replicas=two", "operator.replicas"),
    ("operator.replicas=0", "operator.replicas"),
    ({"operator": {"replicas": 1.5}}, "operator.replicas"),  # a values file: --set keeps "1.5" a string
    ("operator.replica=3", "replica"),                       # a typo is refused, not ignored
    ("webhook.failurePolicy=Sometimes", "webhook.failurePolicy"),
    ("webhook.timeoutSeconds=60", "webhook.timeoutSeconds"),
    ("webhook.port=70000", "webhook.port"),
    ("webhook.injection.shmSize=lots", "webhook.injection.shmSize"),
    ("webhook.injection.pollInterval=soon", "webhook.injection.pollInterval"),
    ("sidecar.image.pullPolicy=Sometimes", "sidecar.image.pullPolicy"),
    ("operator.logLevel=loud", "operator.logLevel"),
    ("monitoring.enabled=yes", "monitoring.enabled"),
    ("monitoring.apiVersion=monitoring.coreos.com/v2", "monitoring.apiVersion"),
    ("networkPolicy.apiServer.ports[0]=https", "networkPolicy.apiServer.ports"),
    ("serviceAccount.annotations.a=1", "serviceAccount.annotations"),  # --set makes 1 an int
    ("storage.blobfuse.reclaimPolicy=Recycle", "storage.blobfuse.reclaimPolicy"),
    ("writer.nodeSelector=pool", "writer.nodeSelector"),
    ("writer.progressPort=70000", "writer.progressPort"),
    ("writer.progressPort=-1", "writer.progressPort"),
]

NAMESPACED = {"Deployment", "Service", "ServiceAccount", "Secret", "Role", "RoleBinding",
              "PodDisruptionBudget", "PersistentVolumeClaim", "NetworkPolicy", "ServiceMonitor",
              "PodMonitor"}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "MutatingWebhookConfiguration", "StorageClass"}
API_VERSIONS = {
    "Deployment": {"apps/v1"}, "Service": {"v1"}, "ServiceAccount": {"v1"}, "Secret": {"v1"},
    "PersistentVolumeClaim": {"v1"}, "Role": {"rbac.authorization.k8s.io/v1"},
    "RoleBinding": {"rbac.authorization.k8s.io/v1"}, "ClusterRole": {"rbac.authorization.k8s.io/v1"},
    "ClusterRoleBinding": {"rbac.authorization.k8s.io/v1"},
    "PodDisruptionBudget": {"policy/v1"}, "NetworkPolicy": {"networking.k8s.io/v1"},
    "CustomResourceDefinition": {"apiextensions.k8s.io/v1"},
    "MutatingWebhookConfiguration": {"admissionregistration.k8s.io/v1"},
    "StorageClass": {"storage.k8s.io/v1"},
    "ServiceMonitor": {"monitoring.coreos.com/v1", "azmonitoring.coreos.com/v1"},
    "PodMonitor": {"monitoring.coreos.com/v1", "azmonitoring.coreos.com/v1"},
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
# Volume types Pod Security "restricted" allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def helm(*args, check=True):
    if not HELM or not os.access(HELM, os.X_OK):
        raise AssertionError(f"helm not found at MODELSWAP_HELM={HELM!r}: run scripts/fetch-helm.sh "
                             "(ctest runs it as the packaging_fetch_helm fixture)")
    r = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir() + "/ms-helm",
                            "HELM_CONFIG_HOME": tempfile.gettempdir() + "/ms-helm",
                            "HELM_DATA_HOME": tempfile.gettempdir() + "/ms-helm"})
    if check and r.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def values_file(values):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump(values, f)
    f.close()
    return f.name


_cache = {}


def render(name):
    """The objects helm renders for VALUE_SETS[name], as dicts (None documents dropped)."""
    if name not in _cache:
        path = values_file(VALUE_SETS[name])
        try:
            out = helm("template", RELEASE, repo.CHART, "-n", NAMESPACE, "-f", path).stdout
        finally:
            os.unlink(path)
        _cache[name] = [d for d in yaml.safe_load_all(out) if d is not None]
    return _cache[name]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name=None):
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    """A LabelSelector (matchLabels only, as the chart uses) matches labels."""
    if set(selector) - {"matchLabels"}:
        raise AssertionError(f"unexpected selector fields {selector}")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def operator_container(docs):
    dep = one(docs, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def args_of(docs):
    """--flag -> [values] of the operator container."""
    out = {}
    for a in operator_container(docs)["args"]:
        k, _, v = a.partition("=")
        out.setdefault(k, []).append(v)
    return out


def main_cc_flags():
    return set(re.findall(r'add_(?:option|flag)\(\s*"(--[a-z0-9-]+)"', repo.read("operator", "main.cc")))


class HelmPresent(unittest.TestCase):
    def test_helm_is_helm3(self):
        out = helm("version", "--short").stdout
        self.assertRegex(out, r"^v3\.", "the chart is apiVersion v2: it needs Helm 3")


class Lint(unittest.TestCase):
    def test_lint_strict_every_value_set(self):
        for name, values in VALUE_SETS.items():
            with self.subTest(values=name):
                path = values_file(values)
                try:
                    r = helm("lint", "--strict", repo.CHART, "-n", NAMESPACE, "-f", path,
                             check=False)
                finally:
                    os.unlink(path)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("0 chart(s) failed", r.stdout)

    def test_schema_refuses_bad_values(self):
        for setting, key in BAD_VALUES:
            with self.subTest(set=setting):
                path = None
                if isinstance(setting, dict):
                    path = values_file(setting)
                    given = ["-f", path]
                else:
                    given = ["--set", setting]
                try:
                    r = helm("template", RELEASE, repo.CHART, "-n", NAMESPACE, *given, check=False)
                    lint = helm("lint", "--strict", repo.CHART, *given, check=False)
                finally:
                    if path:
                        os.unlink(path)
                self.assertNotEqual(r.returncode, 0, f"helm template accepted {setting}")
                self.assertIn("values don't meet the specifications of the schema", r.stderr)
                self.assertIn(key, r.stderr)
                self.assertNotEqual(lint.returncode, 0, f"helm lint accepted {setting}")

    def test_min_available_below_replicas(self):
        r = helm("template", RELEASE, repo.CHART, "--set", "operator.podDisruptionBudget.minAvailable=2",
                 check=False)
        self.assertNotEqual(r.returncode, 0, "minAvailable 2 of 2 replicas blocks every drain")
        self.assertIn("must be below operator.replicas", r.stderr)
        helm("template", RELEASE, repo.CHART, "--set",
             "operator.podDisruptionBudget.minAvailable=2,operator.replicas=3")
        helm("template", RELEASE, repo.CHART, "--set",  # no PDB with one replica: nothing to check
             "operator.podDisruptionBudget.minAvailable=2,operator.replicas=1")

    def test_schema_accepts_percent_min_available(self):
        helm("template", RELEASE, repo.CHART, "--set-string",
             "operator.podDisruptionBudget.minAvailable=50%")

    def test_kubernetes_older_than_1_25_refused(self):
        r = helm("template", RELEASE, repo.CHART, "--kube-version", "1.24.0", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("kubeVersion", r.stderr)
        helm("template", RELEASE, repo.CHART, "--kube-version", "1.25.0")


def check_pod_restricted(test, pod_spec, where):
    """Pod Security Standard "restricted" (and "baseline", which it includes)."""
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        test.assertFalse(pod_spec.get(field, False), f"{where}: {field}")
    psc = pod_spec.get("securityContext", {})
    for v in pod_spec.get("volumes", []):
        kinds = set(v) - {"name"}
        test.assertTrue(kinds <= RESTRICTED_VOLUMES, f"{where}: volume {v['name']} is {kinds}")
    containers = pod_spec.get("containers", []) + pod_spec.get("initContainers", [])
    test.assertTrue(containers)
    for c in containers:
        sc = c.get("securityContext", {})
        name = f"{where} container {c['name']}"
        test.assertFalse(sc.get("privileged", False), name)
        test.assertIs(sc.get("allowPrivilegeEscalation"), False, f"{name}: allowPrivilegeEscalation")
        test.assertTrue(sc.get("runAsNonRoot", psc.get("runAsNonRoot")), f"{name}: runAsNonRoot")
        test.assertNotEqual(sc.get("runAsUser", psc.get("runAsUser")), 0, f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        test.assertIn(seccomp, ("RuntimeDefault", "Localhost"), f"{name}: seccompProfile")
        caps = sc.get("capabilities", {})
        test.assertIn("ALL", caps.get("drop", []), f"{name}: capabilities.drop ALL")
        test.assertTrue(set(caps.get("add", [])) <= {"NET_BIND_SERVICE"}, f"{name}: capabilities.add")
        for p in c.get("ports", []):
            test.assertNotIn("hostPort", p, name)


class Objects(unittest.TestCase):
    """Per-object checks over every values set."""

    def test_every_object(self):
        for name in VALUE_SETS:
            for d in render(name):
                kind = d.get("kind")
                with self.subTest(values=name, kind=kind, name=d.get("metadata", {}).get("name")):
                    self.check_common(name, d)
                    getattr(self, f"check_{kind}")(d)

    def check_common(self, set_name, d):
        self.assertIn(d["kind"], API_VERSIONS, "a kind this test does not know")
        self.assertIn(d["apiVersion"], API_VERSIONS[d["kind"]])
        md = d["metadata"]
        self.assertRegex(md["name"], DNS_SUBDOMAIN)
        self.assertLessEqual(len(md["name"]), 253)
        if d["kind"] in ("Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy"):
            self.assertRegex(md["name"], DNS_LABEL)
            self.assertLessEqual(len(md["name"]), 63)
        if d["kind"] in NAMESPACED:
            want = NAMESPACE
            if d["kind"] == "PersistentVolumeClaim":
                want = VALUE_SETS[set_name].get("storage", {}).get("pvc", {}).get("namespace") or NAMESPACE
            self.assertEqual(md.get("namespace"), want)
        else:
            self.assertIn(d["kind"], CLUSTER_SCOPED)
            self.assertNotIn("namespace", md)
        for k, v in {**md.get("labels", {}), **md.get("annotations", {})}.items():
            self.assertIsInstance(v, str, f"label/annotation {k} must be a string")
        if d["kind"] != "CustomResourceDefinition":
            labels = md.get("labels", {})
            self.assertEqual(labels.get("app.kubernetes.io/instance"), RELEASE)
            self.assertEqual(labels.get("app.kubernetes.io/managed-by"), "Helm")
            self.assertEqual(labels.get("app.kubernetes.io/name"), "modelswap")

    def check_Deployment(self, d):
        spec = d["spec"]
        self.assertIsInstance(spec["replicas"], int)
        pod = spec["template"]
        self.assertTrue(selects(spec["selector"], pod["metadata"]["labels"]),
                        "selector must match the pod template's labels")
        ps = pod["spec"]
        self.assertRegex(ps["serviceAccountName"], DNS_SUBDOMAIN)
        check_pod_restricted(self, ps, "operator pod")
        (c,) = ps["containers"]
        self.assertTrue(all(isinstance(a, str) for a in c["args"]))
        self.assertIn(c["imagePullPolicy"], ("Always", "IfNotPresent", "Never"))
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        ports = {p["name"]: p for p in c["ports"]}
        for p in ports.values():
            self.assertIsInstance(p["containerPort"], int)
            self.assertIn(p["protocol"], ("TCP", "UDP", "SCTP"))
            self.assertLessEqual(len(p["name"]), 15)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            self.assertIn(c[probe]["httpGet"]["port"], ports, f"{probe} names an undeclared port")
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"] for v in ps.get("volumes", [])}
        self.assertEqual(mounts, volumes, "every volume mounted, every mount backed")
        for q in c["resources"].get("requests", {}).values():
            self.assertRegex(str(q), QUANTITY)
        for ref in ps.get("imagePullSecrets", []):
            self.assertEqual(set(ref), {"name"})
        for t in ps.get("tolerations", []):
            self.assertIn(t.get("operator", "Equal"), ("Equal", "Exists"))
        for tsc in ps.get("topologySpreadConstraints", []):
            self.assertTrue(selects(tsc["labelSelector"], pod["metadata"]["labels"]))

    def check_Service(self, d):
        spec = d["spec"]
        self.assertEqual(spec["type"], "ClusterIP")
        self.assertTrue(spec["selector"])
        for p in spec["ports"]:
            self.assertIsInstance(p["port"], int)
            self.assertIn(p["protocol"], ("TCP", "UDP"))
            self.assertRegex(p["name"], DNS_LABEL)

    def check_ServiceAccount(self, d):
        self.assertIs(d["automountServiceAccountToken"], True, "the operator needs its token")

    def check_Secret(self, d):
        self.assertNotIn("data", d, "the operator fills the certificate Secret, not Helm")
        self.assertNotIn("stringData", d)

    def check_rules(self, d):
        self.assertTrue(d["rules"])
        for r in d["rules"]:
            self.assertTrue(r["apiGroups"] and r["resources"] and r["verbs"])
            for v in r["verbs"]:
                self.assertIn(v, ("get", "list", "watch", "create", "update", "patch", "delete"),
                              "no wildcards, no deletecollection, no escalate/bind/impersonate")
            self.assertNotIn("*", r["resources"] + r["apiGroups"])

    check_Role = check_rules
    check_ClusterRole = check_rules

    def check_binding(self, d):
        self.assertEqual(d["roleRef"]["apiGroup"], "rbac.authorization.k8s.io")
        self.assertEqual(d["roleRef"]["kind"], d["kind"].replace("Binding", ""))
        (s,) = d["subjects"]
        self.assertEqual(s["kind"], "ServiceAccount")
        self.assertEqual(s["namespace"], NAMESPACE)

    check_RoleBinding = check_binding
    check_ClusterRoleBinding = check_binding

    def check_PodDisruptionBudget(self, d):
        spec = d["spec"]
        self.assertEqual(set(spec) & {"minAvailable", "maxUnavailable"}, {"minAvailable"})
        self.assertTrue(spec["selector"]["matchLabels"])

    def check_PersistentVolumeClaim(self, d):
        spec = d["spec"]
        self.assertEqual(spec["accessModes"], ["ReadWriteMany"])
        self.assertRegex(spec["resources"]["requests"]["storage"], QUANTITY)
        self.assertEqual(d["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")

    def check_StorageClass(self, d):
        self.assertEqual(d["provisioner"], "blob.csi.azure.com")
        self.assertIn(d["reclaimPolicy"], ("Retain", "Delete"))
        self.assertTrue(all(isinstance(v, str) for v in d["parameters"].values()),
                        "StorageClass parameters are strings")
        self.assertTrue(all(isinstance(o, str) for o in d["mountOptions"]))

    def check_CustomResourceDefinition(self, d):
        self.assertEqual(d["metadata"]["name"], "modelversions.modelswap.io")
        self.assertEqual(d["metadata"]["annotations"]["helm.sh/resource-policy"], "keep")
        self.assertEqual(d, yaml.safe_load(repo.read("crds", "modelversion.yaml")) | {
            "metadata": d["metadata"]}, "the rendered CRD is crds/modelversion.yaml")

    def check_MutatingWebhookConfiguration(self, d):
        (hook,) = d["webhooks"]
        self.assertRegex(hook["name"], r"^[a-z0-9-]+(\.[a-z0-9-]+){2,}$", "fully qualified name")
        self.assertIn(hook["failurePolicy"], ("Fail", "Ignore"))
        self.assertIn(hook["sideEffects"], ("None", "NoneOnDryRun"))
        self.assertTrue(1 <= hook["timeoutSeconds"] <= 30)
        svc = hook["clientConfig"]["service"]
        self.assertEqual(svc["namespace"], NAMESPACE)
        self.assertEqual(svc["port"], 443)
        self.assertNotIn("caBundle", hook["clientConfig"])
        (expr,) = hook["namespaceSelector"]["matchExpressions"]
        self.assertEqual((expr["key"], expr["operator"]), ("kubernetes.io/metadata.name", "NotIn"))
        self.assertIn(NAMESPACE, expr["values"], "the operator must never gate its own pods")
        self.assertIn("kube-system", expr["values"])
        self.assertEqual(hook["objectSelector"]["matchLabels"], {"modelswap.io/inject": "true"})
        (rule,) = hook["rules"]
        self.assertEqual((rule["operations"], rule["resources"]), (["CREATE"], ["pods"]))

    def check_NetworkPolicy(self, d):
        spec = d["spec"]
        self.assertEqual(spec["policyTypes"], ["Ingress", "Egress"])
        self.assertIsInstance(spec["ingress"], list)
        self.assertIsInstance(spec["egress"], list)
        for rule in spec.get("ingress", []) + spec["egress"]:
            self.assertTrue(rule["ports"], "every rule names its ports")
            for p in rule["ports"]:
                self.assertIn(p["protocol"], ("TCP", "UDP"))
                self.assertIsInstance(p["port"], int)
            for peer in rule.get("from", []) + rule.get("to", []):
                self.assertTrue(set(peer) <= {"podSelector", "namespaceSelector", "ipBlock"})

    def check_monitor(self, d, endpoints_key):
        (ep,) = d["spec"][endpoints_key]
        self.assertEqual(ep["path"], "/metrics")
        for k in ("interval", "scrapeTimeout"):
            self.assertRegex(ep[k], r"^[0-9]+(ms|s|m|h)$")
        self.assertIsInstance(ep["port"], str)

    def check_ServiceMonitor(self, d):
        self.check_monitor(d, "endpoints")

    def check_PodMonitor(self, d):
        self.check_monitor(d, "podMetricsEndpoints")


class References(unittest.TestCase):
    """Objects that name each other agree, in every values set."""

    def test_references(self):
        for name in VALUE_SETS:
            with self.subTest(values=name):
                self.check(render(name), VALUE_SETS[name])

    def check(self, docs, values):
        dep = one(docs, "Deployment")
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        c = operator_container(docs)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        args = args_of(docs)
        sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
        for svc in of_kind(docs, "Service"):
            self.assertTrue(selects({"matchLabels": svc["spec"]["selector"]}, pod_labels),
                            f"Service {svc['metadata']['name']} selects no operator pod")
            for p in svc["spec"]["ports"]:
                self.assertIn(p["targetPort"], ports)
        # RBAC: every binding binds the pods' ServiceAccount to a rendered role.
        for kind in ("RoleBinding", "ClusterRoleBinding"):
            for b in of_kind(docs, kind):
                self.assertEqual(b["subjects"][0]["name"], sa)
                one(docs, b["roleRef"]["kind"], b["roleRef"]["name"])
        sas = of_kind(docs, "ServiceAccount")
        if values.get("serviceAccount", {}).get("create", True):
            self.assertEqual([s["metadata"]["name"] for s in sas], [sa])
        else:
            self.assertEqual(sas, [])
        # Leader election in the release namespace (the Role's Lease grant is there).
        self.assertEqual(args["--leader-election-namespace"], [NAMESPACE])
        role = one(docs, "Role")
        role_rules = {}  # (group, resource) -> its rules (secrets has two)
        for r in role["rules"]:
            role_rules.setdefault((r["apiGroups"][0], r["resources"][0]), []).append(r)
        self.assertIn(("coordination.k8s.io", "leases"), role_rules)
        # Webhook: the configuration calls the rendered Service on the operator's webhook port.
        mwcs = of_kind(docs, "MutatingWebhookConfiguration")
        if mwcs:
            (mwc,) = mwcs
            svc = one(docs, "Service", mwc["webhooks"][0]["clientConfig"]["service"]["name"])
            (p,) = [p for p in svc["spec"]["ports"] if p["port"] == 443]
            self.assertEqual(ports[p["targetPort"]], int(args["--webhook-addr"][0].lstrip(":")))
            self.assertEqual(args["--webhook-service"], [svc["metadata"]["name"]])
            self.assertEqual(args["--webhook-config-name"], [mwc["metadata"]["name"]])
            (rule,) = [r for r in one(docs, "ClusterRole")["rules"]
                       if r["resources"] == ["mutatingwebhookconfigurations"]]
            self.assertEqual(rule["resourceNames"], [mwc["metadata"]["name"]])
            if "--webhook-secret" in args:
                secret = one(docs, "Secret", args["--webhook-secret"][0])
                # get/patch on the rendered Secret only; create (re-creating it when deleted)
                # in a rule of its own, since RBAC ignores resourceNames on create.
                (named,) = [r for r in role_rules[("", "secrets")] if "get" in r["verbs"]]
                self.assertEqual(sorted(named["verbs"]), ["get", "patch"])
                self.assertEqual(named["resourceNames"], [secret["metadata"]["name"]])
                (create,) = [r for r in role_rules[("", "secrets")] if r is not named]
                self.assertEqual(create["verbs"], ["create"])
                self.assertNotIn("resourceNames", create)
            else:
                self.assertNotIn(("", "secrets"), role_rules,
                                 "an existing Secret is mounted: no Secret access at all")
        # The PDB protects the operator pods.
        for pdb in of_kind(docs, "PodDisruptionBudget"):
            self.assertTrue(selects(pdb["spec"]["selector"], pod_labels))
            self.assertLess(pdb["spec"]["minAvailable"], dep["spec"]["replicas"],
                            "minAvailable >= replicas blocks every node drain")
        # The ServiceMonitor scrapes the metrics Service's port, and no other Service.
        for sm in of_kind(docs, "ServiceMonitor"):
            self.assertEqual(sm["spec"]["namespaceSelector"]["matchNames"], [NAMESPACE])
            hit = [s for s in of_kind(docs, "Service") if selects(sm["spec"]["selector"],
                                                                  s["metadata"]["labels"])]
            self.assertEqual(len(hit), 1, "the ServiceMonitor selects exactly the metrics Service")
            self.assertIn(sm["spec"]["endpoints"][0]["port"],
                          [p["name"] for p in hit[0]["spec"]["ports"]])
            self.assertEqual(ports[hit[0]["spec"]["ports"][0]["targetPort"]],
                             int(args["--metrics-addr"][0].lstrip(":")))
        for np in of_kind(docs, "NetworkPolicy"):
            self.assertTrue(selects(np["spec"]["podSelector"], pod_labels))


class Flags(unittest.TestCase):
    def test_every_rendered_flag_is_declared(self):
        declared = main_cc_flags()
        self.assertIn("--agent-image-pull-policy", declared)
        for name in VALUE_SETS:
            for flag in args_of(render(name)):
                with self.subTest(values=name, flag=flag):
                    if flag in declared:
                        continue
                    self.assertIn(flag, PENDING_FLAGS,
                                  f"the chart passes {flag}; operator/main.cc lacks it")
                    self.assertIn("writer", VALUE_SETS[name],
                                  f"{flag} (not yet in the operator) rendered without its value")

    def test_defaults_pass_no_pending_flag(self):
        declared = main_cc_flags()
        for flag in args_of(render("defaults")):
            self.assertTrue(flag in declared, f"default install passes {flag}: operator lacks it")


class ValuesEffects(unittest.TestCase):
    """What each values key changes."""

    def kinds(self, name):
        return sorted(d["kind"] for d in render(name))

    def test_defaults(self):
        docs = render("defaults")
        self.assertEqual(self.kinds("defaults"), sorted([
            "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment",
            "MutatingWebhookConfiguration", "PodDisruptionBudget", "Role", "RoleBinding", "Secret",
            "Service", "ServiceAccount"]))
        dep = one(docs, "Deployment")
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertEqual(dep["metadata"]["name"], FULLNAME)
        args = args_of(docs)
        self.assertEqual(args["--agent-image-pull-policy"], ["IfNotPresent"])
        self.assertEqual(args["--models-claim"], ["models"])
        self.assertIn("--leader-elect", args)
        self.assertNotIn("priorityClassName", dep["spec"]["template"]["spec"])
        self.assertEqual(one(docs, "PodDisruptionBudget")["spec"]["minAvailable"], 1)
        self.assertNotIn("annotations", one(docs, "ServiceAccount")["metadata"])

    def test_replicas(self):
        self.assertEqual(of_kind(render("single-replica"), "PodDisruptionBudget"), [],
                         "one replica: a PDB with minAvailable 1 would block node drains")
        self.assertEqual(one(render("single-replica"), "Deployment")["spec"]["replicas"], 1)
        docs = render("three-replicas")
        self.assertEqual(one(docs, "Deployment")["spec"]["replicas"], 3)
        self.assertEqual(one(docs, "PodDisruptionBudget")["spec"]["minAvailable"], 2)

    def test_cert_manager(self):
        docs = render("cert-manager")
        self.assertEqual(of_kind(docs, "Secret"), [], "no empty Secret for the operator to fill")
        args = args_of(docs)
        self.assertNotIn("--webhook-secret", args)
        (cert_dir,) = args["--webhook-cert-dir"]
        dep = one(docs, "Deployment")
        (vol,) = dep["spec"]["template"]["spec"]["volumes"]
        self.assertEqual(vol["secret"]["secretName"], "modelswap-webhook-cert")
        (mount,) = operator_container(docs)["volumeMounts"]
        self.assertEqual((mount["mountPath"], mount["readOnly"]), (cert_dir, True))
        mwc = one(docs, "MutatingWebhookConfiguration")
        self.assertEqual(mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                         f"{NAMESPACE}/modelswap-webhook-cert")
        self.assertNotIn("secrets", [r["resources"][0] for r in one(docs, "Role")["rules"]],
                         "no Secret access when cert-manager provides the certificate")

    def test_own_secret_name(self):
        docs = render("own-secret-name")
        self.assertEqual(args_of(docs)["--webhook-secret"], ["hook-tls"])
        one(docs, "Secret", "hook-tls")

    def test_existing_pvc(self):
        docs = render("existing-pvc")
        self.assertEqual(args_of(docs)["--models-claim"], ["team-models"])
        self.assertEqual(of_kind(docs, "PersistentVolumeClaim"), [])
        self.assertEqual(of_kind(docs, "StorageClass"), [])

    def test_blobfuse_pvc(self):
        docs = render("blobfuse-pvc")
        sc = one(docs, "StorageClass")
        pvc = one(docs, "PersistentVolumeClaim")
        self.assertEqual(pvc["metadata"]["namespace"], "serving")
        self.assertEqual(pvc["spec"]["storageClassName"], sc["metadata"]["name"])
        self.assertEqual(pvc["metadata"]["name"], args_of(docs)["--models-claim"][0])
        self.assertEqual(sc["parameters"]["containerName"], "models")
        self.assertEqual(sc["parameters"]["protocol"], "fuse2")

    def test_monitoring(self):
        for off in ("defaults", "network-policy"):
            kinds = self.kinds(off)
            self.assertNotIn("ServiceMonitor", kinds)
            self.assertNotIn("PodMonitor", kinds)
            self.assertNotIn(f"{FULLNAME}-metrics",
                             [s["metadata"]["name"] for s in of_kind(render(off), "Service")])
        docs = render("monitoring")
        sm = one(docs, "ServiceMonitor")
        self.assertEqual(sm["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(sm["metadata"]["labels"]["release"], "kube-prometheus-stack")
        svc = one(docs, "Service", f"{FULLNAME}-metrics")
        self.assertEqual(svc["spec"]["ports"][0]["port"], 8080)
        pm = one(docs, "PodMonitor")
        self.assertEqual(pm["spec"]["namespaceSelector"], {"any": True})
        self.assertEqual(pm["spec"]["selector"]["matchLabels"], {"modelswap.io/injected": "true"})
        # The injected agent's container port is named "agent" (operator/webhook/admission.cc).
        self.assertIn('{"name", "agent"}', repo.read("operator", "webhook", "admission.cc"))
        self.assertEqual(pm["spec"]["podMetricsEndpoints"][0]["port"], "agent")
        docs = render("azure-monitor")
        self.assertEqual(one(docs, "ServiceMonitor")["apiVersion"], "azmonitoring.coreos.com/v1")
        self.assertEqual(of_kind(docs, "PodMonitor"), [])

    def ingress_ports(self, np):
        return {p["port"]: r.get("from") for r in np["spec"].get("ingress", []) for p in r["ports"]}

    def egress(self, np):
        return [(p["protocol"], p["port"], r.get("to")) for r in np["spec"]["egress"]
                for p in r["ports"]]

    def test_network_policy(self):
        self.assertEqual(of_kind(render("defaults"), "NetworkPolicy"), [])
        docs = render("network-policy")
        np = one(docs, "NetworkPolicy")
        self.assertEqual(self.ingress_ports(np), {9443: None},
                         "webhook port open (the API server), metrics closed without monitoring")
        eg = self.egress(np)
        dns = [to for proto, port, to in eg if port == 53]
        self.assertEqual(sorted(proto for proto, port, _ in eg if port == 53), ["TCP", "UDP"])
        self.assertEqual(dns[0][0]["namespaceSelector"]["matchLabels"],
                         {"kubernetes.io/metadata.name": "kube-system"})
        self.assertEqual(dns[0][0]["podSelector"]["matchLabels"], {"k8s-app": "kube-dns"})
        api = {port: to for proto, port, to in eg if port in (443, 6443)}
        self.assertEqual(api, {443: None, 6443: None})
        (agents,) = [to for proto, port, to in eg if port == 8471]
        self.assertEqual(agents, [{"podSelector": {"matchLabels": {"modelswap.io/injected": "true"}},
                                   "namespaceSelector": {}}])
        self.assertIn("kLabelInjected = \"modelswap.io/injected\"",
                      repo.read("operator", "api", "well_known.h"))
        # Writer pods' progress port (writer.progressPort, the operator's --writer-progress-port),
        # selected by the labels operator/controller/job.cc gives them.
        (writers,) = [to for proto, port, to in eg if port == 8472]
        self.assertEqual(writers, [{"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "modelswap-writer",
            "app.kubernetes.io/managed-by": "modelswap-operator"}}, "namespaceSelector": {}}])
        self.assertEqual(args_of(docs)["--writer-progress-port"], ["8472"])
        self.assertIn('{"app.kubernetes.io/name", "modelswap-writer"}',
                      repo.read("operator", "controller", "job.cc"))
        self.assertIn("kManagedBy = \"modelswap-operator\"",
                      repo.read("operator", "api", "well_known.h"))
        self.assertEqual(len(eg), 6, "nothing but DNS (2), API server (2), agents and writers")
        # The port follows the value; 0 (no progress served) opens nothing.
        np = one(render("writer-progress"), "NetworkPolicy")
        self.assertEqual([port for _, port, to in self.egress(np) if port not in (53, 443, 6443)],
                         [8471, 9000])
        np = one(render("writer-progress-off"), "NetworkPolicy")
        self.assertEqual([port for _, port, to in self.egress(np) if port not in (53, 443, 6443)],
                         [8471])

    def test_network_policy_strict(self):
        np = one(render("network-policy-strict"), "NetworkPolicy")
        ingress = self.ingress_ports(np)
        self.assertEqual(ingress[8080], [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}])
        self.assertIsNone(ingress[9443])
        eg = self.egress(np)
        self.assertEqual([to for _, port, to in eg if port == 443],
                         [[{"ipBlock": {"cidr": "20.1.2.3/32"}}]])
        (agents,) = [to for _, port, to in eg if port == 8471]
        self.assertEqual(agents[0]["namespaceSelector"],
                         {"matchLabels": {"kubernetes.io/metadata.name": "serving"}})
        (writers,) = [to for _, port, to in eg if port == 8472]
        self.assertEqual(writers[0]["namespaceSelector"],
                         {"matchLabels": {"kubernetes.io/metadata.name": "serving"}})
        self.assertEqual(self.ingress_ports(one(render("monitoring") + render("network-policy"),
                                                "NetworkPolicy")), {9443: None})

    def test_webhook_disabled(self):
        docs = render("webhook-disabled")
        kinds = self.kinds("webhook-disabled")
        for k in ("MutatingWebhookConfiguration", "Secret", "Service"):
            self.assertNotIn(k, kinds)
        args = args_of(docs)
        self.assertFalse([a for a in args if a.startswith("--webhook") or a.startswith("--agent")])
        # The writer's pull policy does not depend on the webhook's --agent-image-pull-policy.
        self.assertEqual(args["--writer-image-pull-policy"], ["IfNotPresent"])
        self.assertEqual(args["--writer-progress-port"], ["8472"])
        self.assertNotIn("webhook", [p["name"] for p in operator_container(docs)["ports"]])
        self.assertEqual([r["resources"] for r in one(docs, "Role")["rules"]], [["leases"]])
        self.assertNotIn(["mutatingwebhookconfigurations"],
                         [r["resources"] for r in one(docs, "ClusterRole")["rules"]])
        self.assertEqual(one(docs, "NetworkPolicy")["spec"]["ingress"], [],
                         "no webhook, no monitoring: nothing may connect to the operator")

    def test_service_account(self):
        docs = render("workload-identity")
        sa = one(docs, "ServiceAccount")
        self.assertEqual(sa["metadata"]["annotations"],
                         {"azure.workload.identity/client-id": "0000-1111"})
        self.assertEqual(one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
                         ["azure.workload.identity/use"], "true")
        docs = render("existing-service-account")
        self.assertEqual(of_kind(docs, "ServiceAccount"), [])
        self.assertEqual(one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
                         "platform-sa")

    def test_operator_extras(self):
        docs = render("operator-extras")
        ps = one(docs, "Deployment")["spec"]["template"]["spec"]
        self.assertEqual(ps["priorityClassName"], "platform-critical")
        self.assertEqual(ps["imagePullSecrets"], [{"name": "acr-pull"}])
        self.assertEqual(ps["tolerations"], [{"key": "CriticalAddonsOnly", "operator": "Exists"}])
        a = operator_container(docs)["args"]
        self.assertEqual(a[-1], "--probe-interval=30", "extraArgs come last")
        self.assertEqual(a.count("--probe-interval=30"), 1)
        self.assertEqual(args_of(docs)["--agent-image-pull-policy"], ["Always"])
        self.assertEqual(args_of(docs)["--writer-image-pull-policy"], ["Always"])

    def test_writer_settings(self):
        for flag in PENDING_FLAGS:
            self.assertNotIn(flag, args_of(render("defaults")))
        self.assertEqual(args_of(render("writer-progress"))["--writer-progress-port"], ["9000"])
        self.assertEqual(args_of(render("writer-progress-off"))["--writer-progress-port"], ["0"])
        args = args_of(render("writer-settings"))
        self.assertEqual(args["--writer-service-account"], ["model-writer"])
        self.assertEqual(args["--writer-image-pull-secret"], ["acr-pull"])
        self.assertEqual(args["--writer-node-selector"], ["kubernetes.azure.com/agentpool=writers"])
        self.assertEqual(json.loads(args["--writer-tolerations"][0]),
                         VALUE_SETS["writer-settings"]["writer"]["tolerations"])

    def test_no_crd(self):
        self.assertNotIn("CustomResourceDefinition", self.kinds("no-crd"))


if __name__ == "__main__":
    unittest.main()
