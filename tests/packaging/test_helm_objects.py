"""Every rendered object, in every values set: apiVersion/kind/metadata, a DNS-safe name, a
namespace exactly when its kind is namespaced (the release's, or storage.pvc.namespace for the
PVC), the chart's labels, and the fields of its kind we rely on (check_<Kind>; the operator pod
meets Pod Security "restricted", the node-cache DaemonSet "restricted" but for what it exists
for); and the objects agree with each other: Service selectors and targetPorts hit the operator
pods, the webhook configuration names the rendered Service, RBAC binds the pods' ServiceAccount
to the rendered roles and names the rendered Secret and webhook configuration, the
ServiceMonitor selects the metrics Service only, the PDB and NetworkPolicy select the operator
pods.
"""
import json
import os
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402
from helm_util import *  # noqa: E402,F401,F403


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

    def check_DaemonSet(self, d):
        """The node-cache DaemonSet: "restricted" but for its hostPath volume and its root init
        container holding CAP_CHOWN alone, which is all "baseline" would still refuse (hostPath)
        and what the release namespace must allow ("privileged")."""
        spec = d["spec"]
        pod = spec["template"]
        self.assertTrue(selects(spec["selector"], pod["metadata"]["labels"]))
        self.assertEqual(pod["metadata"]["labels"]["app.kubernetes.io/component"], "node-cache")
        ps = pod["spec"]
        self.assertIs(ps["automountServiceAccountToken"], False, "no API access")
        (vol,) = ps["volumes"]
        self.assertEqual(vol["hostPath"]["type"], "DirectoryOrCreate")
        check_pod_baseline(self, ps, "node-cache pod", host_path_volumes={vol["name"]})
        (prepare,) = ps["initContainers"]
        (keep,) = ps["containers"]
        # Without the hostPath and the init container, what runs all the time is "restricted".
        check_pod_restricted(self, {**ps, "volumes": [], "initContainers": []}, "node-cache pod")
        sc = prepare["securityContext"]
        self.assertEqual(sc["runAsUser"], 0, "chown needs root: it is the init container's job")
        self.assertEqual(sc["capabilities"], {"drop": ["ALL"], "add": ["CHOWN"]})
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertNotIn("privileged", sc)
        self.assertEqual(ps["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
        self.assertIs(keep["securityContext"]["readOnlyRootFilesystem"], True)
        (m,) = keep["volumeMounts"]
        self.assertEqual((m["name"], m["readOnly"]), (vol["name"], True))
        (m,) = prepare["volumeMounts"]
        self.assertEqual(m["name"], vol["name"])
        for c in (prepare, keep):
            self.assertIn(c["imagePullPolicy"], ("Always", "IfNotPresent", "Never"))
            for q in c["resources"].get("requests", {}).values():
                self.assertRegex(str(q), QUANTITY)

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


if __name__ == "__main__":
    unittest.main()
