"""Helm itself on the chart: Helm 3 is present; `helm lint --strict` passes for every values set
in VALUE_SETS; values.schema.json makes helm refuse mistyped, out-of-range and unknown values
(BAD_VALUES) and Kubernetes < 1.25.
"""
import json
import os
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402
from helm_util import *  # noqa: E402,F401,F403


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


if __name__ == "__main__":
    unittest.main()
