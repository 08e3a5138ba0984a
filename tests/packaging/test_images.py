"""Dockerfile checks: multi-stage, build stage runs scripts/install-deps.sh, runtime stage runs as
a non-root user with an exec-form ENTRYPOINT, and every shared library the built binaries link
(ldd, owner package by dpkg -S) is installed by the runtime stage's apt-get list, directly or as
a Depends of a listed package. The binaries come from $MODELSWAP_BINARIES (set by ctest); the
library test skips when they are not built.
"""
import functools
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import repo  # noqa: E402

DOCKERFILES = {"modelswap-operator": "Dockerfile.operator",
               "modelswap-sidecar": "Dockerfile.sidecar"}


def stages(text):
    """[(FROM line, [instructions])] with line continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append((line, []))
        elif out:
            out[-1][1].append(line)
    return out


def runtime_packages(text):
    _, instructions = stages(text)[-1]
    pkgs = set()
    for ins in instructions:
        m = re.search(r"apt-get install ([^&]*)", ins)
        if m:
            pkgs.update(t for t in m.group(1).split() if not t.startswith("-"))
    return pkgs


@functools.lru_cache(maxsize=None)
def depends(pkg):
    """Direct Depends/Pre-Depends of an installed package (every alternative)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", pkg],
                             capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError:
        return set()
    names = set()
    for alt in re.split(r"[,|]", out):
        name = alt.strip().split(" ")[0].split(":")[0]
        if name:
            names.add(name)
    return names


def closure(pkgs):
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(depends(p))
    return seen


def owner(lib):
    for candidate in (lib, os.path.realpath(lib),
                      re.sub(r"^/usr/lib/", "/lib/", os.path.realpath(lib)),
                      re.sub(r"^/lib/", "/usr/lib/", lib)):
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


def linked_libraries(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return [m.group(1) for m in re.finditer(r"=>\s+(/\S+)", out)]


class Dockerfiles(unittest.TestCase):
    def test_structure(self):
        for binary, name in DOCKERFILES.items():
            text = repo.read(name)
            with self.subTest(dockerfile=name):
                st = stages(text)
                self.assertGreaterEqual(len(st), 2, "multi-stage")
                self.assertRegex(st[0][0], r"^FROM debian:12 AS build")
                build = " ".join(st[0][1])
                self.assertIn("COPY scripts/install-deps.sh", build)
                self.assertIn("install-deps.sh", build.split("RUN", 1)[1])
                runtime_from, runtime = st[-1]
                self.assertIn("debian:12-slim", runtime_from)
                users = [i for i in runtime if i.upper().startswith("USER ")]
                self.assertEqual(len(users), 1)
                uid = users[0].split()[1].split(":")[0]
                self.assertTrue(uid.isdigit() and int(uid) > 0, "numeric non-root USER")
                (entry,) = [i for i in runtime if i.upper().startswith("ENTRYPOINT")]
                args = json.loads(entry.split(None, 1)[1])  # exec form: a JSON array
                self.assertEqual(args, [f"/usr/local/bin/{binary}"])
                self.assertFalse(any(i.upper().startswith("CMD") for i in runtime))

    def test_runtime_packages_cover_linked_libraries(self):
        binaries = [b for b in os.environ.get("MODELSWAP_BINARIES", "").split(";") if b]
        binaries = [b for b in binaries if os.path.exists(b)]
        if not binaries:
            self.skipTest("modelswap-operator/modelswap-sidecar not built in this build tree")
        for binary in binaries:
            name = os.path.basename(binary)
            allowed = closure(runtime_packages(repo.read(DOCKERFILES[name])))
            for lib in linked_libraries(binary):
                with self.subTest(binary=name, library=lib):
                    pkg = owner(lib)
                    self.assertIsNotNone(pkg, f"no Debian package owns {lib}")
                    self.assertIn(pkg, allowed,
                                  f"{lib} comes from {pkg}, which {DOCKERFILES[name]}'s runtime "
                                  "stage does not install")


if __name__ == "__main__":
    unittest.main()
