"""The node cache in the rendered chart (docs/aks.md section 4.1): the DaemonSet that prepares
nodeCache.hostPath for the agents' uid, the operator flags that make the webhook offer it (and the
per-pod fallback), and the one RBAC grant it needs (get on namespaces, for their Pod Security
label); each following its values, and none of it without the webhook or with nodeCache off.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402
from helm_util import NAMESPACE, args_of, of_kind, one, render  # noqa: E402


def agent_uid():
    """The uid the webhook runs the agent as (operator/webhook/injection_config.h)."""
    (uid,) = re.findall(r"int64_t agent_run_as_user = (\d+);",
                        repo.read("operator", "webhook", "injection_config.h"))
    return int(uid)


def daemon_set(docs):
    ds = one(docs, "DaemonSet")
    return ds, ds["spec"]["template"]["spec"]


class NodeCache(unittest.TestCase):
    def test_daemon_set_prepares_the_host_path_for_the_agents(self):
        docs = render("defaults")
        ds, ps = daemon_set(docs)
        self.assertEqual(ds["metadata"]["name"], "ms-modelswap-node-cache")
        self.assertEqual(ds["metadata"]["namespace"], NAMESPACE)
        (vol,) = ps["volumes"]
        self.assertEqual(vol["hostPath"]["path"], "/var/lib/modelswap/cache")
        uid = agent_uid()
        (prepare,) = ps["initContainers"]
        script = prepare["command"][-1]
        self.assertEqual(prepare["command"][:2], ["/bin/sh", "-ec"])
        self.assertIn(f"chown {uid}:{uid} /cache", script)
        self.assertIn("chmod 0755 /cache", script)
        # chmod before chown: root may chmod only while it owns the directory (no CAP_FOWNER),
        # and a directory the agents already own is left alone.
        self.assertLess(script.index("chmod"), script.index("chown"))
        self.assertIn(f'"$(stat -c %u /cache)" != {uid}', script)
        (keep,) = ps["containers"]
        self.assertEqual(keep["securityContext"]["runAsUser"], uid)
        self.assertEqual(keep["readinessProbe"]["exec"]["command"],
                         ["/usr/bin/test", "-O", "/cache"], "Ready: the agents' uid owns it")
        self.assertEqual(ps["tolerations"], [{"operator": "Exists"}],
                         "runs wherever injected pods may (tainted GPU pools too)")
        # Both containers run the sidecar image, which has the shell tools the commands use.
        image = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        agent_image = [a.split("=", 1)[1] for a in image if a.startswith("--agent-image=")]
        self.assertEqual({prepare["image"], keep["image"]}, set(agent_image))
        dockerfile = repo.read("Dockerfile.sidecar")
        self.assertRegex(dockerfile, r"(?m)^FROM debian:12-slim AS runtime$",
                         "a distroless runtime image would lack sh, stat, chown, sleep and test")

    def test_operator_flags_offer_it(self):
        args = args_of(render("defaults"))
        ds, ps = daemon_set(render("defaults"))
        self.assertEqual(args["--node-cache-host-path"], [ps["volumes"][0]["hostPath"]["path"]])
        self.assertEqual(args["--node-cache-mount-path"], ["/var/run/modelswap/cache"])
        self.assertEqual(args["--node-cache-max-bytes"], ["20Gi"])
        self.assertEqual(args["--pod-security-default"], ["privileged"])
        self.assertEqual(args["--agent-stage-dir"], ["/var/run/modelswap/stage"])
        self.assertEqual(args["--per-pod-cache-max-bytes"], ["2Gi"])
        self.assertNotIn("--agent-stage-size", args, "no sizeLimit by default")

    def test_rbac_get_namespaces_only(self):
        rules = [r for r in one(render("defaults"), "ClusterRole")["rules"]
                 if "namespaces" in r["resources"]]
        self.assertEqual(rules, [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}])
        self.assertFalse([r for r in one(render("defaults"), "Role")["rules"]
                          if "namespaces" in r["resources"]])

    def test_values_reach_it(self):
        docs = render("node-cache-custom")
        args = args_of(docs)
        ds, ps = daemon_set(docs)
        self.assertEqual(ps["volumes"][0]["hostPath"]["path"], "/mnt/nvme/modelswap")
        self.assertEqual(args["--node-cache-host-path"], ["/mnt/nvme/modelswap"])
        self.assertEqual(args["--node-cache-mount-path"], ["/cache"])
        self.assertEqual(args["--node-cache-max-bytes"], ["200Gi"])
        self.assertEqual(args["--pod-security-default"], ["baseline"])
        self.assertEqual(args["--agent-stage-dir"], ["/stage"])
        self.assertEqual(args["--agent-stage-size"], ["50Gi"])
        self.assertEqual(args["--per-pod-cache-max-bytes"], ["4Gi"])
        self.assertEqual(ps["nodeSelector"], {"gpu": "true"})
        self.assertNotIn("tolerations", ps)
        self.assertEqual(ps["priorityClassName"], "system-node-critical")
        self.assertEqual(ps["imagePullSecrets"], [{"name": "acr-pull"}])
        self.assertIn("/mnt/nvme/modelswap", ps["initContainers"][0]["command"][-1])

    def test_off_and_without_webhook(self):
        docs = render("node-cache-off")
        self.assertEqual(of_kind(docs, "DaemonSet"), [])
        args = args_of(docs)
        self.assertFalse([a for a in args if a.startswith("--node-cache")])
        self.assertNotIn("--pod-security-default", args)
        self.assertEqual(args["--agent-stage-dir"], ["/var/run/modelswap/stage"],
                         "every pod gets the per-pod fallback")
        self.assertFalse([r for r in one(docs, "ClusterRole")["rules"]
                          if "namespaces" in r["resources"]])
        docs = render("webhook-disabled")
        self.assertEqual(of_kind(docs, "DaemonSet"), [], "no webhook: no pod would mount it")
        self.assertFalse([a for a in args_of(docs) if "cache" in a or "stage" in a])

    def test_other_workloads_do_not_select_its_pods(self):
        docs = render("network-policy")
        ds, ps = daemon_set(docs)
        labels = ds["spec"]["template"]["metadata"]["labels"]
        dep = one(docs, "Deployment")
        self.assertFalse(all(labels.get(k) == v for k, v in
                             dep["spec"]["selector"]["matchLabels"].items()))
        for kind in ("PodDisruptionBudget", "NetworkPolicy"):
            for o in of_kind(docs, kind):
                sel = o["spec"].get("selector", o["spec"].get("podSelector"))
                self.assertFalse(all(labels.get(k) == v for k, v in sel["matchLabels"].items()),
                                 f"{kind} selects the node-cache pods")


if __name__ == "__main__":
    unittest.main()
