"""What each values key changes in the rendered chart (replicas 1: no PDB; monitoring:
ServiceMonitor, PodMonitor and metrics Service; networkPolicy: the policy's ports; ...), and every
flag the Deployment passes is declared by operator/main.cc, except test_chart.py's PENDING_FLAGS,
which appear only when their writer.* value is set.
"""
import json
import os
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402
from helm_util import *  # noqa: E402,F401,F403
from test_chart import PENDING_FLAGS  # noqa: E402


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
            "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "DaemonSet",
            "Deployment", "MutatingWebhookConfiguration", "PodDisruptionBudget", "Role", "RoleBinding", "Secret",
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
        # The injected agent's container port is named "agent" (operator/webhook/injection_patch.cc).
        self.assertIn('{"name", "agent"}', repo.read("operator", "webhook", "injection_patch.cc"))
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
