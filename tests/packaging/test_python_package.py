"""The Python client as a package (sidecar/client/python/pyproject.toml), installed as users do.

Creates a venv with the python3 running this test (ctest passes CMake's Python3_EXECUTABLE),
pip-installs the package offline (--no-index --no-build-isolation --no-deps: the venv's own
setuptools builds it), then, from an unrelated working directory and with no PYTHONPATH:
  - modelswap, modelswap.model, modelswap.channel and modelswap.region import from the venv's
    site-packages, not from the source tree;
  - every module of the source package was installed, the distribution's version is the CMake
    project's and it declares no runtime dependency;
  - the installed package works: a channel round trip (pure Python) and a region commit through
    libmodelswap_region.so ($MODELSWAP_REGION_LIB, the built library).

pip builds in the directory it installs from (build/, *.egg-info), so the package is copied to a
temporary directory first: the source tree is left as it is. Setuptools older than 70.1 builds
wheels only with the `wheel` package, which venvs do not get: it is installed into the venv from
Debian's python3-wheel-whl (/usr/share/python-wheels) when missing.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.path.realpath(os.environ["MODELSWAP_SOURCE_DIR"])
PACKAGE_SRC = os.path.join(SOURCE, "sidecar", "client", "python")
VERSION = os.environ["MODELSWAP_VERSION"]
LOCAL_WHEELS = os.environ.get("MODELSWAP_LOCAL_WHEELS", "/usr/share/python-wheels")

PROBE = r"""
import importlib, importlib.metadata, json, os, site, sys, tempfile
mods = ["modelswap", "modelswap.model", "modelswap.channel", "modelswap.region"]
files = {m: os.path.realpath(importlib.import_module(m).__file__) for m in mods}
dist = importlib.metadata.distribution("modelswap")
print(json.dumps({
    "files": files,
    "site": [os.path.realpath(p) for p in site.getsitepackages()],
    "version": dist.version,
    "requires": dist.requires,
    "requires_python": dist.metadata["Requires-Python"],
    "installed": sorted(str(f) for f in dist.files if str(f).startswith("modelswap/")
                        and str(f).endswith(".py")),
}))
"""

USE = r"""
import sys, tempfile
from modelswap.channel import ChannelReader, ChannelWriter
from modelswap.region import Region
shm = sys.argv[1]
w = ChannelWriter(shm, "py", 16, 64)
r = ChannelReader(shm, "py", 64)
seq = w.publish(b"from site-packages")
m = r.read_next()
assert m is not None and m.seq == seq and m.data == b"from site-packages", m
region = Region("py", 8192, shm_dir=shm)
region.write(0, b"kept")
assert region.commit() == 1
region.close()
again = Region("py", 8192, shm_dir=shm)
assert again.generation == 1 and bytes(again.data[:4]) == b"kept"
again.close()
print("use: ok")
"""


def run(cmd, timeout=300, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout


def clean_env():
    """No pip configuration, index or find-links from the machine; no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PYTHONNOUSERSITE="1")
    return env


class PythonPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelswap-python-")
        cls.env = clean_env()
        src = os.path.join(cls.tmp, "src")
        shutil.copytree(PACKAGE_SRC, src, ignore=shutil.ignore_patterns(
            "build", "dist", "*.egg-info", "__pycache__"))
        venv = os.path.join(cls.tmp, "venv")
        run([sys.executable, "-m", "venv", venv], env=cls.env)
        cls.python = os.path.join(venv, "bin", "python")
        cls.ensure_wheel()
        run([cls.python, "-m", "pip", "install", "--no-index", "--no-build-isolation",
             "--no-deps", src], env=cls.env)
        cls.elsewhere = os.path.join(cls.tmp, "elsewhere")
        os.makedirs(cls.elsewhere)

    @classmethod
    def ensure_wheel(cls):
        probe = ("import importlib.util as u; import sys; sys.exit(0 if u.find_spec('wheel') or "
                 "u.find_spec('setuptools.command.bdist_wheel') else 1)")
        if subprocess.run([cls.python, "-c", probe], env=cls.env, timeout=60).returncode == 0:
            return
        wheels = sorted(glob.glob(os.path.join(LOCAL_WHEELS, "wheel-*.whl")))
        if not wheels:
            raise AssertionError(f"the venv's setuptools needs the wheel package and there is no "
                                 f"wheel-*.whl in {LOCAL_WHEELS} (Debian: python3-wheel-whl)")
        run([cls.python, "-m", "pip", "install", "--no-index", "--no-deps", wheels[-1]],
            env=cls.env)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def probe(self):
        return json.loads(run([self.python, "-c", PROBE], cwd=self.elsewhere, env=self.env))

    def test_modules_come_from_site_packages(self):
        info = self.probe()
        for module, path in info["files"].items():
            self.assertTrue(any(path.startswith(site + os.sep) for site in info["site"]),
                            f"{module} imported from {path}, not from {info['site']}")
            self.assertFalse(path.startswith(SOURCE + os.sep), f"{module} from the source tree")
            self.assertFalse(path.startswith(os.path.join(self.tmp, "src") + os.sep), module)

    def test_every_module_installed(self):
        sources = sorted(f"modelswap/{f}" for f in os.listdir(os.path.join(PACKAGE_SRC, "modelswap"))
                         if f.endswith(".py"))
        self.assertEqual(self.probe()["installed"], sources)

    def test_metadata(self):
        info = self.probe()
        self.assertEqual(info["version"], VERSION)
        self.assertEqual(info["requires_python"], ">=3.9")
        self.assertFalse(info["requires"], "the package must have no runtime dependencies")

    def test_installed_package_works(self):
        lib = os.environ.get("MODELSWAP_REGION_LIB", "")
        self.assertTrue(os.path.isfile(lib), f"MODELSWAP_REGION_LIB={lib!r}: build modelswap_region_c")
        shm = os.path.join(self.tmp, "shm")
        os.makedirs(shm)
        env = dict(self.env, MODELSWAP_REGION_LIB=lib)
        self.assertIn("use: ok", run([self.python, "-c", USE, shm], cwd=self.elsewhere, env=env,
                                     timeout=120))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[1:])
