"""Chart and YAML checks that need no helm binary or cluster.

- values.yaml, Chart.yaml and every non-templated YAML file in the repo parse;
- the chart's CRD template is crds/modelversion.yaml (plus only the keep annotation);
- every leaf of values.yaml is used by some template;
- the chart's RBAC grants every (group, resource, verb) operator/ calls, and nothing else beyond
  a short list of documented extras (finalizers); namespaced calls are checked against the Role;
- the MutatingWebhookConfiguration and Deployment keep the properties the webhook needs (docs/design.md), and every
  flag the Deployment passes is declared by operator/main.cc (or is one of PENDING_FLAGS, passed
  only when the values key that needs it is set);
- values.schema.json (draft-07) describes exactly the keys of values.yaml, closed objects only.
Rendering with real helm is tests/packaging/test_helm_*.py (helm_util.py).
"""
import glob
import json
import os
import re
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402


def templates():
    out = {}
    for p in glob.glob(os.path.join(repo.CHART, "templates", "*")):
        with open(p, encoding="utf-8") as f:
            out[os.path.basename(p)] = f.read()
    return out


def leaves(node, prefix=""):
    """Dotted paths of values.yaml leaves; empty maps/lists count as leaves."""
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix


class YamlParses(unittest.TestCase):
    def test_chart_files(self):
        chart = yaml.safe_load(repo.read("charts", "modelswap", "Chart.yaml"))
        self.assertEqual(chart["apiVersion"], "v2")
        self.assertEqual(chart["name"], "modelswap")
        values = yaml.safe_load(repo.read("charts", "modelswap", "values.yaml"))
        self.assertIsInstance(values, dict)

    def test_every_plain_yaml_in_repo(self):
        skip = ("/templates/", "/build", "/.git/", "/demo-run/")
        files = [p for p in glob.glob(os.path.join(repo.ROOT, "**", "*.y*ml"), recursive=True)
                 if not any(s in p for s in skip)]
        self.assertGreater(len(files), 5)
        for p in files:
            with self.subTest(file=os.path.relpath(p, repo.ROOT)):
                with open(p, encoding="utf-8") as f:
                    repo.load_all(f.read())

    def test_templates_parse_once_actions_are_removed(self):
        for name, text in templates().items():
            if name.endswith(".yaml"):
                with self.subTest(template=name):
                    repo.load_all(repo.detemplate(text))


class CrdCopy(unittest.TestCase):
    def test_template_is_crds_file_plus_keep_annotation(self):
        source = repo.read("crds", "modelversion.yaml")
        text = templates()["crd-modelversion.yaml"]
        lines = text.splitlines(keepends=True)
        self.assertTrue(lines[0].startswith("{{- if .Values.crds.install }}"))
        self.assertEqual(lines[-1].strip(), "{{- end }}")
        body = [l for l in lines[1:-1] if not l.startswith("# Generated from crds/")
                and not l.startswith("# identical: tests/packaging")]
        extra = ["  annotations:\n",
                 "    # `helm uninstall` must not delete the CRD: that would delete every ModelVersion.\n",
                 "    helm.sh/resource-policy: keep\n"]
        at = body.index("metadata:\n") + 1
        self.assertEqual(body[at:at + 3], extra)
        del body[at:at + 3]
        self.assertEqual("".join(body), source,
                         "charts/modelswap/templates/crd-modelversion.yaml drifted from crds/")


class ValuesUsed(unittest.TestCase):
    def test_every_value_is_used_by_a_template(self):
        values = yaml.safe_load(repo.read("charts", "modelswap", "values.yaml"))
        text = "\n".join(templates().values())
        for leaf in leaves(values):
            parts = leaf.split(".")
            # Used if the leaf, or a map above it passed whole (toYaml), is referenced.
            used = any(re.search(r"\.Values\." + re.escape(".".join(parts[:i])) + r"(?![\w.])", text)
                       for i in range(len(parts), 0, -1))
            with self.subTest(value=leaf):
                self.assertTrue(used, f"values.yaml key {leaf} is not used by any template")


def resource_refs():
    """kX -> (group, plural) from operator/kube/resource.h, operator/api/well_known.h and
    operator/webhook/namespace_policy.h (kNamespaces, read by the webhook only)."""
    refs = {}
    text = (repo.read("operator", "kube", "resource.h") + repo.read("operator", "api", "well_known.h")
            + repo.read("operator", "webhook", "namespace_policy.h"))
    for m in re.finditer(r'inline const ResourceRef (k\w+)\{\s*"([^"]*)",\s*"[^"]*",\s*"([^"]*)"',
                         text):
        refs[m.group(1)] = (m.group(2), m.group(3))
    return refs


def calls_in(text):
    """(ref, verb, subresource) for each client_->Verb(kRef, ...) and reflector in the text."""
    verbs = {"Get": ["get"], "List": ["list"], "Create": ["create"], "Update": ["update"],
             "Patch": ["patch"], "Delete": ["delete"], "Watch": ["watch"]}
    for m in re.finditer(r"client_?->(Get|List|Create|Update|Patch|Delete|Watch)\(\s*(k\w+)", text):
        depth, i = 0, text.index("(", m.start())
        for i in range(i, len(text)):  # the call's own closing parenthesis
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
        args = re.sub(r"\s+", "", text[m.end():i])
        # The last argument of Update/Patch is status_subresource.
        status = m.group(1) in ("Update", "Patch") and args.endswith(",true")
        for v in verbs[m.group(1)]:
            yield m.group(2), v, "status" if status else ""
    for m in re.finditer(r"MakeReflector\([^,]+,\s*(k\w+)", text):
        yield m.group(1), "list", ""
        yield m.group(1), "watch", ""


def rbac_rules():
    docs = repo.load_all(repo.detemplate(templates()["rbac.yaml"]))
    rules = {}
    for d in docs:
        if d["kind"] not in ("ClusterRole", "Role"):
            continue
        for r in d["rules"]:
            for g in r["apiGroups"]:
                for res in r["resources"]:
                    rules.setdefault((d["kind"], g, res), set()).update(r["verbs"])
    return rules


# Grants the code scan cannot see, each with its reason.
EXTRA_GRANTS = {
    # Jobs carry blockOwnerDeletion ownerReferences to their ModelVersion (operator/controller/job.cc).
    ("ClusterRole", "modelswap.io", "modelversions/finalizers", "update"),
}

# Calls granted by the namespaced Role (the operator's own namespace), not the ClusterRole: the
# leader-election Lease, the webhook's certificate Secret (operator/webhook/kube_cert_api.cc; create
# re-creates it when deleted, operator/webhook/cert_manager.cc) and the native-sidecar detection's
# dry-run pod creates (operator/webhook/runtime.cc).
ROLE_CALLS = {
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
    ("", "secrets", "get"),
    ("", "secrets", "patch"),
    ("", "secrets", "create"),
    ("", "pods", "create"),
}


class Rbac(unittest.TestCase):
    def setUp(self):
        refs = resource_refs()
        self.needed = set()
        for p in glob.glob(os.path.join(repo.ROOT, "operator", "**", "*.cc"), recursive=True):
            if "/standalone/" in p or os.path.basename(p) == "http_client.cc":
                continue  # no API server there; the client implements the verbs
            with open(p, encoding="utf-8") as f:
                for ref, verb, sub in calls_in(f.read()):
                    group, plural = refs[ref]
                    self.needed.add((group, plural + ("/" + sub if sub else ""), verb))
        self.rules = rbac_rules()

    def test_scan_found_the_operator_calls(self):
        self.assertIn(("modelswap.io", "modelversions", "watch"), self.needed)
        self.assertIn(("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"),
                      self.needed)
        self.assertIn(("", "secrets", "patch"), self.needed)
        self.assertIn(("", "secrets", "create"), self.needed)
        self.assertIn(("", "pods", "create"), self.needed)
        self.assertIn(("batch", "jobs", "create"), self.needed)
        self.assertIn(("coordination.k8s.io", "leases", "update"), self.needed)
        self.assertIn(("", "namespaces", "get"), self.needed)  # the webhook's Pod Security lookup

    def test_every_call_is_granted(self):
        for group, res, verb in sorted(self.needed):
            kind = "Role" if (group, res, verb) in ROLE_CALLS else "ClusterRole"
            with self.subTest(call=f"{verb} {group}/{res}"):
                self.assertIn(verb, self.rules.get((kind, group, res), set()),
                              f"{kind} lacks {verb} on {group}/{res}")

    def test_nothing_more_is_granted(self):
        for (kind, group, res), verbs in self.rules.items():
            for verb in verbs:
                grant = (kind, group, res, verb)
                with self.subTest(grant=grant):
                    self.assertTrue((group, res, verb) in self.needed or grant in EXTRA_GRANTS,
                                    f"{kind} grants {verb} on {group}/{res} that nothing uses")


# Flags the chart passes only when their values key is set, whose operator support is still to be
# written. Each must sit inside a template condition on that key; test_helm.py checks the default
# render passes none of them. None today: the writer.* flags are in operator/main.cc
# (AddWriterFlags) and WriterFlagsAreTheOperators checks how the chart passes them.
PENDING_FLAGS = {}

FLAG_LINE = re.compile(r'^\s*- (?:\{\{ printf )?["\']?(--[a-z][a-z0-9-]*)', re.M)


def block_depth(lines):
    """How many if/with/range blocks are open after these template lines."""
    depth = 0
    for line in lines:
        depth += len(re.findall(r"\{\{-? (?:if|with|range) ", line))
        depth -= len(re.findall(r"\{\{-? end -?\}\}", line))
    return depth


class Manifests(unittest.TestCase):
    def test_webhook_configuration(self):
        text = templates()["mutatingwebhookconfiguration.yaml"]
        (mwc,) = repo.load_all(repo.detemplate(text))
        (hook,) = mwc["webhooks"]
        self.assertEqual(hook["reinvocationPolicy"], "IfNeeded")
        self.assertEqual(hook["sideEffects"], "None")
        self.assertEqual(hook["admissionReviewVersions"], ["v1"])
        self.assertEqual(hook["clientConfig"]["service"]["path"], "/mutate-pods")
        self.assertNotIn("caBundle", hook["clientConfig"])  # the operator owns it
        self.assertIn(".Values.webhook.failurePolicy", text)
        self.assertIn("objectSelector", hook)
        self.assertIn("kubernetes.io/metadata.name", text)
        self.assertIn(".Release.Namespace", text.split("namespaceSelector")[1])
        values = yaml.safe_load(repo.read("charts", "modelswap", "values.yaml"))
        self.assertEqual(values["webhook"]["failurePolicy"], "Fail")
        self.assertIn("kube-system", values["webhook"]["excludeNamespaces"])

    def test_operator_deployment_hardening(self):
        (dep,) = repo.load_all(repo.detemplate(templates()["deployment.yaml"]))
        spec = dep["spec"]["template"]["spec"]
        self.assertTrue(spec["securityContext"]["runAsNonRoot"])
        (c,) = spec["containers"]
        sc = c["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        for probe in ("livenessProbe", "readinessProbe"):
            self.assertIn(probe, c)
        self.assertIn("--leader-elect", c["args"])
        values = yaml.safe_load(repo.read("charts", "modelswap", "values.yaml"))
        self.assertEqual(values["operator"]["replicas"], 2)
        (pdb,) = repo.load_all(repo.detemplate(templates()["pdb.yaml"]))
        self.assertEqual(pdb["kind"], "PodDisruptionBudget")

    def test_every_flag_the_chart_passes_exists(self):
        # Every --flag in the Deployment's args (inside or outside template conditions) is
        # declared by operator/main.cc, so no chart setting crashes the operator at start.
        text = templates()["deployment.yaml"]
        flags = set(FLAG_LINE.findall(text))
        self.assertIn("--webhook-addr", flags)
        self.assertIn("--agent-memory-limit", flags)
        self.assertIn("--agent-image-pull-policy", flags)
        self.assertIn("--writer-tolerations", flags)  # the printf form is seen too
        main = repo.read("operator", "main.cc")
        lines = text.splitlines()
        for flag in sorted(flags):
            with self.subTest(flag=flag):
                if f'"{flag}"' in main:
                    continue
                self.assertIn(flag, PENDING_FLAGS, f"chart passes {flag}; operator/main.cc lacks it")
                # Pending: the line right above must open a with/range on its values key.
                (at,) = [i for i, l in enumerate(lines) if FLAG_LINE.match(l)
                         and FLAG_LINE.match(l).group(1) == flag]
                self.assertRegex(lines[at - 1], r"\{\{-? (with|range) .*"
                                 + re.escape(PENDING_FLAGS[flag]) + r" \}\}",
                                 f"{flag} is not yet in operator/main.cc: pass it only when "
                                 f"{PENDING_FLAGS[flag]} is set")

    def test_writer_flags_are_the_operators(self):
        # The chart's writer.* values reach the operator's flags (operator/main.cc AddWriterFlags),
        # each passed only when set, in the form the operator parses: one flag per pull secret
        # and per node label (KEY=VALUE), tolerations as one JSON list.
        text = templates()["deployment.yaml"]
        main = repo.read("operator", "main.cc")
        lines = text.splitlines()
        for flag, key in (("--writer-service-account", "with .Values.writer.serviceAccountName"),
                          ("--writer-image-pull-secret", "range .Values.writer.imagePullSecrets"),
                          ("--writer-node-selector", "range $key, $value := .Values.writer.nodeSelector"),
                          ("--writer-tolerations", "with .Values.writer.tolerations")):
            with self.subTest(flag=flag):
                self.assertIn(f'"{flag}"', main)
                (at,) = [i for i, l in enumerate(lines) if FLAG_LINE.match(l)
                         and FLAG_LINE.match(l).group(1) == flag]
                self.assertIn(key, lines[at - 1])
        self.assertIn("(toJson .)", text)
        # Always passed, outside every template condition (so also with webhook.enabled false,
        # where --agent-image-pull-policy, the operator's default for the writer's, is not).
        for flag, value in (("--writer-image-pull-policy", ".Values.sidecar.image.pullPolicy"),
                            ("--writer-progress-port", ".Values.writer.progressPort")):
            with self.subTest(flag=flag):
                self.assertIn(f'"{flag}"', main)
                (at,) = [i for i, l in enumerate(lines) if FLAG_LINE.match(l)
                         and FLAG_LINE.match(l).group(1) == flag]
                self.assertIn(value, lines[at])
                self.assertEqual(block_depth(lines[:at]), 0, f"{flag} is inside a condition")
        (agent,) = [i for i, l in enumerate(lines) if "--agent-image-pull-policy" in l]
        self.assertGreater(block_depth(lines[:agent]), 0, "the depth count sees the webhook block")

    def test_blobfuse_storage_class(self):
        text = templates()["storageclass.yaml"]
        (sc,) = repo.load_all(repo.detemplate(text))
        self.assertEqual(sc["provisioner"], "blob.csi.azure.com")
        self.assertEqual(sc["parameters"]["protocol"], "fuse2")
        self.assertIn("--disable-writeback-cache=true", sc["mountOptions"])
        self.assertTrue(any(o.startswith("-o attr_timeout=") for o in sc["mountOptions"]))
        self.assertTrue(any(o.startswith("-o entry_timeout=") for o in sc["mountOptions"]))
        values = yaml.safe_load(repo.read("charts", "modelswap", "values.yaml"))
        self.assertLessEqual(values["storage"]["blobfuse"]["attributeTimeoutSeconds"], 2)


def schema_paths(node, prefix=""):
    """Dotted paths of the schema's declared properties; yields (path, subschema)."""
    for k, sub in node.get("properties", {}).items():
        p = f"{prefix}.{k}" if prefix else k
        yield p, sub
        yield from schema_paths(sub, p)


class ValuesSchema(unittest.TestCase):
    def setUp(self):
        self.values = yaml.safe_load(repo.read("charts", "modelswap", "values.yaml"))
        self.schema = json.loads(repo.read("charts", "modelswap", "values.schema.json"))
        self.paths = dict(schema_paths(self.schema))

    def test_draft07_and_closed(self):
        self.assertEqual(self.schema["$schema"], "http://json-schema.org/draft-07/schema#")
        self.assertIs(self.schema["additionalProperties"], False)
        for p, sub in self.paths.items():
            if "properties" in sub:
                with self.subTest(key=p):
                    self.assertIs(sub.get("additionalProperties"), False,
                                  f"{p}: an object with declared keys must refuse others (typos)")

    def test_every_value_has_a_schema(self):
        for leaf in leaves(self.values):
            with self.subTest(value=leaf):
                # The leaf itself, or a free-form map above it (resources, matchLabels, ...).
                parts = leaf.split(".")
                covered = [".".join(parts[:i]) for i in range(len(parts), 0, -1)
                           if ".".join(parts[:i]) in self.paths]
                self.assertTrue(covered, f"values.yaml key {leaf} has no schema")
                sub = self.paths[covered[0]]
                if covered[0] != leaf:
                    self.assertNotIn("properties", sub,
                                     f"{leaf}: {covered[0]} declares its keys but not this one")
                self.assertTrue("type" in sub or "anyOf" in sub or "enum" in sub,
                                f"{leaf}: the schema gives no type")

    def test_every_schema_key_is_a_value(self):
        values_paths = set()
        def walk(node, prefix=""):
            if isinstance(node, dict):
                for k, v in node.items():
                    p = f"{prefix}.{k}" if prefix else k
                    values_paths.add(p)
                    walk(v, p)
        walk(self.values)
        for p in self.paths:
            if p == "global" or p.split(".")[-1] in ("matchLabels", "matchExpressions"):
                continue  # Helm's own key; label selector fields
            with self.subTest(key=p):
                self.assertTrue(p in values_paths,
                                f"values.schema.json declares {p}, values.yaml lacks it")

    def test_required_keys_are_in_values(self):
        def walk(sub, node, prefix):
            for k in sub.get("required", []):
                with self.subTest(key=f"{prefix}{k}"):
                    self.assertIn(k, node)
            for k, s in sub.get("properties", {}).items():
                if isinstance(node, dict) and isinstance(node.get(k), dict):
                    walk(s, node[k], f"{prefix}{k}.")
        walk(self.schema, self.values, "")


if __name__ == "__main__":
    unittest.main()
