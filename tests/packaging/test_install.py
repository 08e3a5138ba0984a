"""`cmake --install` of the build tree, used the way an app image uses it.

Installs the build into a temporary prefix, then, against that prefix only:
  - the layout: binaries, the client libraries and those they link, headers at their repository
    paths, the CMake package and the pkg-config files;
  - libmodelswap_region.so exports the C ABI (ms_region_*) and nothing else;
  - every installed header compiles on its own (C++23; the C ABI headers also as C11), so nothing
    they include was left out;
  - a CMake project (consumer/CMakeLists.txt) finds the package, links modelswap::client and
    modelswap::channel and its program round-trips a channel message;
  - a C program built with `pkg-config --cflags --libs modelswap-region` runs against the
    installed .so, and the same C++ program built with `pkg-config ... modelswap` links the
    static region library too;
  - no installed text file names the source or the build tree.

Run by ctest (tests/packaging/CMakeLists.txt), which passes the tools and trees through the
environment. The build must be complete: cmake --install fails on a target not built.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

SOURCE = os.path.realpath(os.environ["MODELSWAP_SOURCE_DIR"])
BUILD = os.path.realpath(os.environ["MODELSWAP_BUILD_DIR"])
CMAKE = os.environ.get("MODELSWAP_CMAKE", "cmake")
CC = os.environ.get("MODELSWAP_CC", "cc")
CXX = os.environ.get("MODELSWAP_CXX", "c++")
PKG_CONFIG = os.environ.get("MODELSWAP_PKG_CONFIG", "pkg-config")
LIBDIR = os.environ.get("MODELSWAP_INSTALL_LIBDIR", "lib")
VERSION = os.environ["MODELSWAP_VERSION"]
CONFIGURED_PREFIX = os.environ.get("MODELSWAP_CONFIGURED_PREFIX", "/usr/local")
CONSUMER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "consumer")

STATIC_LIBS = ["client", "channel", "region", "volume", "msf", "common"]
C_ABI_HEADERS = ["sidecar/client/model/modelswap.h", "sidecar/client/channel/modelswap_channel.h",
                 "sidecar/client/region/modelswap_region.h"]


def run(cmd, timeout=300, **kwargs):
    """Runs cmd; on failure raises AssertionError with its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout


class InstalledTree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelswap-install-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        cls.libdir = os.path.join(cls.prefix, LIBDIR)
        cls.include = os.path.join(cls.prefix, "include", "modelswap")
        run([CMAKE, "--install", BUILD, "--prefix", cls.prefix], timeout=120)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def workdir(self, name):
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        return path

    def pkg_config_env(self):
        env = dict(os.environ)
        env["PKG_CONFIG_PATH"] = os.pathsep.join(
            p for p in [os.path.join(self.libdir, "pkgconfig"), env.get("PKG_CONFIG_PATH")] if p)
        return env

    def test_layout(self):
        for name in ["modelswap-sidecar", "modelswap-operator"]:
            path = os.path.join(self.prefix, "bin", name)
            self.assertTrue(os.access(path, os.X_OK), f"{path} missing or not executable")
        for lib in STATIC_LIBS:
            self.assertTrue(os.path.isfile(os.path.join(self.libdir, f"libmodelswap_{lib}.a")), lib)
        self.assertTrue(os.path.isfile(os.path.join(self.libdir, "libmodelswap_region.so")))
        for header in C_ABI_HEADERS + ["sidecar/client/model/client.h", "common/status.h",
                                       "sidecar/client/channel/channel.h",
                                       "sidecar/client/region/region.h", "sidecar/client/c_abi.h"]:
            self.assertTrue(os.path.isfile(os.path.join(self.include, header)), header)
        cmakedir = os.path.join(self.libdir, "cmake", "modelswap")
        for name in ["modelswapConfig.cmake", "modelswapConfigVersion.cmake",
                     "modelswapTargets.cmake"]:
            self.assertTrue(os.path.isfile(os.path.join(cmakedir, name)), name)
        for name in ["modelswap.pc", "modelswap-region.pc"]:
            self.assertTrue(os.path.isfile(os.path.join(self.libdir, "pkgconfig", name)), name)
        # Only what apps use: not the HTTP server's header, not the Python sources.
        self.assertFalse(os.path.exists(os.path.join(self.include, "common", "http_server.h")))
        self.assertTrue(os.path.isfile(os.path.join(self.include, "sidecar", "msf", "reader.h")))
        self.assertFalse(os.path.exists(os.path.join(self.include, "sidecar", "client", "python")))

    def test_region_so_exports_only_the_c_abi(self):
        nm = shutil.which("nm")
        self.assertIsNotNone(nm, "nm (binutils) not found")
        out = run([nm, "-D", "--defined-only", os.path.join(self.libdir, "libmodelswap_region.so")])
        exported = [line.split()[-1] for line in out.splitlines() if line.strip()]
        self.assertIn("ms_region_open", exported)
        self.assertEqual([s for s in exported if not s.startswith("ms_region_")], [])

    def installed_headers(self):
        headers = []
        for root, _, files in os.walk(self.include):
            headers += [os.path.relpath(os.path.join(root, f), self.include)
                        for f in files if f.endswith(".h")]
        return sorted(headers)

    def test_every_header_compiles_alone(self):
        headers = self.installed_headers()
        self.assertGreater(len(headers), 20)
        jobs = [(CXX, ["-x", "c++", "-std=c++23"], h) for h in headers]
        jobs += [(CC, ["-x", "c", "-std=c11"], h) for h in C_ABI_HEADERS]

        def compile_one(job):
            compiler, flags, header = job
            proc = subprocess.run(
                [compiler, *flags, "-fsyntax-only", "-Wall", "-Werror", "-I", self.include, "-"],
                input=f'#include "{header}"\n', capture_output=True, text=True, timeout=120)
            return None if proc.returncode == 0 else f"{header} ({flags[1]}):\n{proc.stderr}"

        with ThreadPoolExecutor(max_workers=2) as pool:
            failures = [f for f in pool.map(compile_one, jobs) if f]
        self.assertEqual(failures, [], "\n".join(failures))

    def test_cmake_consumer(self):
        build = self.workdir("cmake-consumer")
        run([CMAKE, "-S", CONSUMER, "-B", build, f"-DCMAKE_CXX_COMPILER={CXX}",
             f"-DCMAKE_PREFIX_PATH={self.prefix}", f"-DMODELSWAP_EXPECTED_VERSION={VERSION}",
             "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF", "-DCMAKE_BUILD_TYPE=Release"])
        with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
            cache = f.read()
        self.assertIn(f"modelswap_DIR:PATH={self.libdir}/cmake/modelswap", cache)
        run([CMAKE, "--build", build, "-j2"], timeout=600)
        shm = self.workdir("cmake-consumer-shm")
        self.assertIn("consumer: ok", run([os.path.join(build, "consumer"), shm], timeout=60))
        self.assertTrue(os.path.exists(os.path.join(shm, "channels", "packaging.chan")))

    def test_pkg_config_c_consumer(self):
        env = self.pkg_config_env()
        flags = run([PKG_CONFIG, "--cflags", "--libs", "modelswap-region"], env=env).split()
        self.assertIn(self.include, [os.path.normpath(f[2:]) for f in flags if f.startswith("-I")])
        out = os.path.join(self.workdir("c-consumer"), "region_consumer")
        run([CC, "-std=c11", "-Wall", "-Werror", os.path.join(CONSUMER, "region_consumer.c"),
             "-o", out, *flags])
        run_env = dict(os.environ, LD_LIBRARY_PATH=self.libdir)
        loaded = run(["ldd", out], env=run_env)
        line = next(l for l in loaded.splitlines() if "libmodelswap_region.so" in l)
        self.assertIn(os.path.realpath(os.path.join(self.libdir, "libmodelswap_region.so")),
                      os.path.realpath(line.split("=>")[1].split("(")[0].strip()))
        shm = self.workdir("c-consumer-shm")
        self.assertIn("region_consumer: ok", run([out, shm], env=run_env, timeout=60))

    def test_pkg_config_cxx_consumer(self):
        flags = run([PKG_CONFIG, "--cflags", "--libs", "modelswap"],
                    env=self.pkg_config_env()).split()
        out = os.path.join(self.workdir("cxx-pc-consumer"), "consumer")
        run([CXX, "-std=c++23", "-DMODELSWAP_CONSUMER_REGION",
             os.path.join(CONSUMER, "consumer.cc"), "-o", out, *flags], timeout=600)
        shm = self.workdir("cxx-pc-consumer-shm")
        self.assertIn("consumer: ok", run([out, shm], timeout=60))
        self.assertTrue(os.path.exists(os.path.join(shm, "regions", "packaging.region")))

    def test_no_installed_file_names_the_trees(self):
        checked = 0
        for root, _, files in os.walk(self.prefix):
            for name in files:
                if not name.endswith((".cmake", ".pc", ".h")):
                    continue
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    text = f.read()
                checked += 1
                for tree in {SOURCE, BUILD, os.environ["MODELSWAP_SOURCE_DIR"],
                             os.environ["MODELSWAP_BUILD_DIR"]}:
                    self.assertNotIn(tree, text, f"{os.path.join(root, name)} names {tree}")
                # Nor the prefix configured at build time: the .pc files are relocatable.
                if name.endswith(".pc"):
                    self.assertNotIn(CONFIGURED_PREFIX, text, name)
        self.assertGreater(checked, 20)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[1:])
