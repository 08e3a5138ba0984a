#!/usr/bin/env python3
"""The rules the tree keeps, checked on every build (docs/design.md, "The tree").

- Every quoted #include names a file of the repository, by its path from the root.
- Includes go one way: common <- sidecar, common <- operator, never operator <-> sidecar; inside
  each deployable a subsystem includes only what it stands on (RULES below), so kube/ is a
  Kubernetes client library that knows nothing of ModelVersions, and the app-side client
  libraries never include the agent they talk to.
- Every folder of the deployables, and every top folder, says what it holds in a README.md.
- CMake adds folders and files by name: no if(EXISTS ...) guard that would let a deleted file or
  test vanish from the build instead of failing it.

Run: python3 include_rules_test.py [REPO_ROOT]; exits 1 listing every violation.
"""
import os
import re
import sys
import unittest

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))

# folder prefix -> folder prefixes its files may include (a folder may always include itself).
# The longest matching prefix decides.
RULES = {
    "common/": ["common/"],
    "sidecar/": ["common/", "sidecar/"],
    "sidecar/msf/": ["common/"],
    # A version on the volume is a whole .msf or chunks + recipe: reading a chunked version's
    # header (version_chain.cc) goes through the chunk store.
    "sidecar/volume/": ["common/", "sidecar/msf/", "sidecar/chunk/"],
    # Chunks and recipes know files only as bytes; the node cache assembles and checks .msf files.
    "sidecar/chunk/": ["common/"],
    "sidecar/cache/": ["common/", "sidecar/chunk/", "sidecar/msf/", "sidecar/volume/"],
    "sidecar/writer/": ["common/", "sidecar/msf/", "sidecar/volume/", "sidecar/chunk/"],
    "sidecar/client/": ["common/", "sidecar/client/c_abi.h"],
    # The model client opens and checks version files itself (the agent only points at them).
    "sidecar/client/model/": ["common/", "sidecar/client/c_abi.h", "sidecar/msf/",
                              "sidecar/volume/"],
    "sidecar/snapshot/": ["common/", "sidecar/client/region/"],
    "sidecar/agent/": ["common/", "sidecar/msf/", "sidecar/volume/", "sidecar/client/model/",
                       "sidecar/snapshot/", "sidecar/client/region/", "sidecar/chunk/",
                       "sidecar/cache/"],
    "operator/": ["common/", "operator/"],
    "operator/kube/": ["common/"],
    "operator/api/": ["common/", "operator/kube/"],
    "operator/metrics/": ["common/"],
    "operator/webhook/": ["common/", "operator/kube/", "operator/api/", "operator/metrics/"],
    "operator/controller/": ["common/", "operator/kube/", "operator/api/", "operator/metrics/",
                             "operator/webhook/"],
    "operator/standalone/": ["common/", "operator/kube/", "operator/api/", "operator/metrics/",
                             "operator/controller/"],
}
SOURCE_TOPS = ["common", "sidecar", "operator"]
TOP_FOLDERS = ["common", "sidecar", "operator", "tests", "bench", "examples", "charts", "crds",
               "docs", "scripts"]
CODE = (".h", ".cc", ".c", ".inc")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
        return f.read()


def files_under(*tops):
    for top in tops:
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [x for x in dirs if x not in ("__pycache__", "testdata")]
            for f in files:
                yield os.path.relpath(os.path.join(d, f), ROOT)


def rule_for(path):
    best = None
    for prefix in RULES:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def own_folder(path):
    # A file may always include the files of its own folder.
    return os.path.dirname(path) + "/"


class TreeRules(unittest.TestCase):
    def test_includes_resolve_and_follow_the_rules(self):
        bad = []
        for path in files_under("common", "sidecar", "operator", "tests", "bench", "examples"):
            if not path.endswith(CODE):
                continue
            text = read(path)
            for inc in INCLUDE.findall(text):
                if not os.path.isfile(os.path.join(ROOT, inc)) and not os.path.isfile(
                        os.path.join(ROOT, os.path.dirname(path), inc)):
                    bad.append(f"{path}: #include \"{inc}\" names no file of the repository")
                    continue
                prefix = rule_for(path)
                if prefix is None:  # tests, bench, examples may include anything
                    continue
                allowed = RULES[prefix] + [own_folder(path)]
                if "/" in inc and not any(inc.startswith(a) for a in allowed):
                    bad.append(f"{path}: includes {inc}, but {prefix} may include only "
                               + ", ".join(allowed))
        self.assertEqual(bad, [], "\n".join(bad))

    def test_every_folder_has_a_readme(self):
        missing = [t for t in TOP_FOLDERS if not os.path.isfile(os.path.join(ROOT, t, "README.md"))]
        for top in SOURCE_TOPS:
            for d, dirs, files in os.walk(os.path.join(ROOT, top)):
                dirs[:] = [x for x in dirs if x != "__pycache__" and not x.endswith(".egg-info")]
                if "__init__.py" in files:  # a Python package: its parent's README covers it
                    continue
                if any(f.endswith(CODE + (".py",)) for f in files) and "README.md" not in files:
                    missing.append(os.path.relpath(d, ROOT))
        self.assertEqual(missing, [], "folders without README.md: " + ", ".join(missing))

    def test_cmake_names_every_folder_and_file(self):
        guarded = []
        for path in files_under("common", "sidecar", "operator", "tests", "bench", "examples"):
            if os.path.basename(path) == "CMakeLists.txt" or path.endswith(".cmake"):
                text = read(path)
                if re.search(r"if\s*\(\s*(NOT\s+)?EXISTS", text) or "file(GLOB" in text:
                    guarded.append(path)
        top = read("CMakeLists.txt")
        if re.search(r"if\s*\(\s*(NOT\s+)?EXISTS", top) or "file(GLOB" in top:
            guarded.append("CMakeLists.txt")
        self.assertEqual(guarded, [], "CMake files with EXISTS guards or globs: " + ", ".join(guarded))


    def test_readme_parts_table_matches_the_tree(self):
        text = read("README.md")
        table = text[text.index("## The parts"):]
        table = table[:table.index("\n\n", table.index("| folder |"))]
        listed = set(re.findall(r"^\| `([\w/.-]+)/`", table, re.M))
        missing_dirs = sorted(d for d in listed if not os.path.isdir(os.path.join(ROOT, d)))
        self.assertEqual(missing_dirs, [], "README lists folders that do not exist")
        subsystems = set(TOP_FOLDERS)
        for top in ("sidecar", "operator"):
            for d in os.listdir(os.path.join(ROOT, top)):
                if os.path.isdir(os.path.join(ROOT, top, d)) and d != "client":
                    subsystems.add(f"{top}/{d}")
        for d in os.listdir(os.path.join(ROOT, "sidecar", "client")):
            if os.path.isdir(os.path.join(ROOT, "sidecar", "client", d)):
                subsystems.add(f"sidecar/client/{d}")
        self.assertEqual(sorted(subsystems - listed), [], "folders missing from README's parts table")


class RulesCatchViolations(unittest.TestCase):
    """The checker itself: a forbidden include must be reported (so the test above can fail)."""

    def test_forbidden_directions_are_refused(self):
        def ok(path, inc):
            prefix = rule_for(path)
            return any(inc.startswith(a) for a in RULES[prefix] + [own_folder(path)])
        self.assertFalse(ok("operator/kube/client.cc", "operator/controller/reconciler.h"))
        self.assertFalse(ok("operator/kube/client.cc", "operator/webhook/admission.h"))
        self.assertFalse(ok("operator/kube/client.cc", "operator/api/well_known.h"))
        self.assertFalse(ok("operator/main.cc", "sidecar/msf/reader.h"))
        self.assertFalse(ok("sidecar/agent/agent.cc", "operator/kube/client.h"))
        self.assertFalse(ok("common/log.cc", "sidecar/msf/reader.h"))
        self.assertFalse(ok("sidecar/client/model/client.cc", "sidecar/agent/loader.h"))
        self.assertFalse(ok("sidecar/client/model/client.cc", "sidecar/client/region/region.h"))
        self.assertFalse(ok("operator/webhook/runtime.cc", "operator/controller/controller.h"))
        self.assertTrue(ok("operator/controller/job.cc", "operator/kube/client.h"))
        self.assertTrue(ok("operator/kube/client.cc", "operator/kube/watch.h"))
        self.assertTrue(ok("sidecar/main.cc", "sidecar/commands/cli.h"))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
