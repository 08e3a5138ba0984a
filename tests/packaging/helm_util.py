"""Shared by the test_helm_*.py files: Helm 3 ($MODELSWAP_HELM, fetched by scripts/fetch-helm.sh;
ctest's packaging_fetch_helm fixture runs it; a missing helm fails, never skips), the values sets
every test renders, rendering with a per-process cache, and small helpers over the rendered
objects (one of a kind, label selectors, the operator's args, Pod Security checks).

kubectl is not used: without an API server it cannot map a manifest's kind (discovery), so
`kubectl create --dry-run=client` checks nothing offline; the per-kind checks do instead.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402

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
    "node-cache-off": {"nodeCache": {"enabled": False}},
    "node-cache-custom": {
        "nodeCache": {"hostPath": "/mnt/nvme/modelswap", "mountPath": "/cache", "maxBytes": "200Gi",
                      "podSecurityDefault": "baseline",
                      "fallback": {"stageDir": "/stage", "sizeLimit": "50Gi", "maxBytes": "4Gi"},
                      "daemonSet": {"nodeSelector": {"gpu": "true"}, "tolerations": [],
                                    "priorityClassName": "system-node-critical"}},
        "operator": {"imagePullSecrets": [{"name": "acr-pull"}]}},
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
    ("nodeCache.enabled=yes", "nodeCache.enabled"),
    ("nodeCache.hostPath=var/lib/x", "nodeCache.hostPath"),
    ("nodeCache.hostPath=/var/lib/x/", "nodeCache.hostPath"),
    ("nodeCache.maxBytes=500m", "nodeCache.maxBytes"),    # milli to Kubernetes, mega to the agent
    ("nodeCache.maxBytes=20GB", "nodeCache.maxBytes"),
    ("nodeCache.podSecurityDefault=strict", "nodeCache.podSecurityDefault"),
    ("nodeCache.fallback.sizeLimit=big", "nodeCache.fallback.sizeLimit"),
    ("nodeCache.daemonSet.privileged=true", "privileged"),
]

NAMESPACED = {"Deployment", "DaemonSet", "Service", "ServiceAccount", "Secret", "Role", "RoleBinding",
              "PodDisruptionBudget", "PersistentVolumeClaim", "NetworkPolicy", "ServiceMonitor",
              "PodMonitor"}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "MutatingWebhookConfiguration", "StorageClass"}
API_VERSIONS = {
    "Deployment": {"apps/v1"}, "DaemonSet": {"apps/v1"}, "Service": {"v1"}, "ServiceAccount": {"v1"}, "Secret": {"v1"},
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
# Capabilities Pod Security "baseline" lets containers add.
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
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
    return set(re.findall(r'add_(?:option|flag|option_function<[\w:]+>)\(\s*"(--[a-z0-9-]+)"', repo.read("operator", "main.cc")))


def check_pod_baseline(test, pod_spec, where, host_path_volumes=()):
    """Pod Security "baseline", except hostPath for the named volumes (what needs "privileged")."""
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        test.assertFalse(pod_spec.get(field, False), f"{where}: {field}")
    for v in pod_spec.get("volumes", []):
        if "hostPath" in v:
            test.assertIn(v["name"], host_path_volumes, f"{where}: hostPath volume {v['name']}")
    for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        name = f"{where} container {c['name']}"
        test.assertFalse(sc.get("privileged", False), name)
        test.assertTrue(set(sc.get("capabilities", {}).get("add", [])) <= BASELINE_CAPS, name)
        for p in c.get("ports", []):
            test.assertNotIn("hostPort", p, name)


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
