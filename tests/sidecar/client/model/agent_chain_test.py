"""The Python client on a real agent serving delta versions: the agent publishes a chain in the
control block's record, the client maps every layer and reads it newest first; a compaction of
that chain (a full version again) reads the same; a handle keeps its chain across the swaps.

Real processes: the writer (`modelswap-sidecar write ... --publish`) and the agent
(`modelswap-sidecar agent`), waited for with bounded loops.

usage: agent_chain_test.py SIDECAR_BINARY
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "sidecar",
                                "client", "python"))
from modelswap import model  # noqa: E402

SIDECAR = sys.argv.pop(1)
WAIT_SECONDS = 60  # a loaded machine: the agent verifies and prefaults each layer

BASE = dict([(b"k%d" % i, b"base-%d" % i) for i in range(100)] +
            [(b"shadow", b"v1"), (b"gone", b"v1")])
V2 = {b"shadow": b"v2", b"gone": None, b"new2": b"v2"}
V3 = {b"k3": None, b"new3": b"v3", b"gone": b"v3"}
# What a lookup through v3's chain must give (None: absent or deleted).
WANT_V3 = {b"shadow": b"v2", b"gone": b"v3", b"new2": b"v2", b"new3": b"v3", b"k3": None,
           b"k4": b"base-4", b"absent": None}


class AgentChainTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.root, self.shm = os.path.join(self.tmp, "volume"), os.path.join(self.tmp, "shm")
        os.makedirs(self.root)
        self.write("v1", BASE)
        with open(os.path.join(self.tmp, "agent.log"), "wb") as log:
            self.agent = subprocess.Popen(
                [SIDECAR, "agent", "--root", self.root, "--models", "m", "--shm-dir", self.shm,
                 "--listen", "", "--poll-interval", "50"],
                stdout=subprocess.DEVNULL, stderr=log)
        self.addCleanup(self.stop_agent)

    def stop_agent(self):
        if self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()

    def write(self, version, rows, *extra):
        tsv = os.path.join(self.tmp, version + ".tsv")
        with open(tsv, "wb") as f:
            for k, v in (rows or {}).items():
                f.write(k + b"\t" + (b"\\N" if v is None else v) + b"\n")
        args = [SIDECAR, "write", "--root", self.root, "--model", "m", "--version", version,
                "--whole-file", "--publish"] + list(extra)
        if rows is not None:
            args += ["--from-tsv", tsv]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

    def agent_log(self):
        with open(os.path.join(self.tmp, "agent.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def wait_for(self, m, version):
        """A handle on `version` once the agent serves it (bounded wait)."""
        deadline, last = time.monotonic() + WAIT_SECONDS, None
        while time.monotonic() < deadline:
            self.assertIsNone(self.agent.poll(), "agent exited:\n" + self.agent_log())
            try:
                h = (m or self.attach()).acquire()
                if h.version == version:
                    return h
                last = "serving " + h.version
            except model.Unavailable as e:
                last = str(e)
            time.sleep(0.05)
        self.fail("agent did not serve %s in %ds (%s):\n%s" % (version, WAIT_SECONDS, last,
                                                             self.agent_log()))

    def attach(self):
        if getattr(self, "model", None) is None:
            deadline = time.monotonic() + WAIT_SECONDS
            while True:
                try:
                    self.model = model.Model("m", shm_dir=self.shm)
                    self.addCleanup(self.model.close)
                    break
                except model.Unavailable:
                    self.assertLess(time.monotonic(), deadline, "no control block:\n" +
                                    self.agent_log())
                    time.sleep(0.05)
        return self.model

    def expect(self, h, want):
        for key, value in want.items():
            got = h.get(key)
            self.assertEqual(None if got is None else bytes(got), value, key)

    def test_chain_served_by_the_agent_then_compacted(self):
        h1 = self.wait_for(None, "v1")
        self.assertEqual(h1.layer_count, 1)
        m = self.attach()

        self.write("v2", V2, "--delta-on", "v1")
        h2 = self.wait_for(m, "v2")
        self.assertEqual([v for v, _ in h2.layers], ["v2", "v1"])
        self.expect(h2, {b"shadow": b"v2", b"gone": None, b"new2": b"v2", b"k5": b"base-5"})

        self.write("v3", V3, "--delta-on", "v2")
        h3 = self.wait_for(m, "v3")
        self.assertEqual([v for v, _ in h3.layers], ["v3", "v2", "v1"])
        self.expect(h3, WANT_V3)

        self.write("v4", None, "--compact", "--delta-on", "v3")
        h4 = self.wait_for(m, "v4")
        self.assertEqual(h4.layer_count, 1)
        self.expect(h4, WANT_V3)
        live = dict(BASE)
        live.update(V2)
        live.update(V3)
        self.assertEqual(h4.entry_count, sum(v is not None for v in live.values()))

        # Handles taken earlier keep their versions (the agent keeps the layers they announce).
        self.expect(h1, {b"shadow": b"v1", b"gone": b"v1", b"new2": None})
        self.expect(h2, {b"shadow": b"v2", b"gone": None})


if __name__ == "__main__":
    unittest.main()
