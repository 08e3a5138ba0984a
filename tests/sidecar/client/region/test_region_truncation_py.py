"""A region file truncated under a Python app (sidecar/client/python/modelswap/region.py), in real
processes: the app must not die of SIGBUS when it reads or writes ``Region.data`` or calls the
region's methods afterwards. region.py reads through the C ABI's mapping, which the C library
registers with its SIGBUS guard (common/mapping_guard.h): a fault there resumes on zero pages. The
commit after the truncation must raise RegionError "Aborted" (region.py checks the file's size):
before that check it returned a generation that no file held, and the app took it as durable.

Run by CTest as `python3 -m unittest test_region_truncation_py` from this directory with
PYTHONPATH pointing at sidecar/client/python and MODELSWAP_REGION_LIB at libmodelswap_region.so.
"""
import os
import shutil
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "testing"))
from child_process import run_child  # noqa: E402

SIZE = 1 << 20

# The app: opens the region, commits a state, says "ready", waits for a line, then touches data
# and commits again; prints what each step did.
CHILD = r"""
import sys
from modelswap import Region, RegionError
shm, size = sys.argv[1], int(sys.argv[2])
r = Region("state", size, shm_dir=shm)
r.write(0, b"committed")
r.commit()
print("ready", flush=True)
sys.stdin.readline()
head = bytes(r.data[0:9])
tail = bytes(r.data[size - 9:size])
print("read", "same" if head == b"committed" else "zeros" if head == bytes(9) else "other",
      flush=True)
try:
    r.data[size - 1] = 1  # a store into a page the file lost
    r.write(0, b"after-cut")
    r.commit()
    print("commit returned", flush=True)
except RegionError as e:
    print("commit failed", e.code, flush=True)
try:
    r.close()
except RegionError as e:
    print("close failed", e.code, flush=True)
print("done", flush=True)
"""


class RegionTruncationPyTest(unittest.TestCase):
    def setUp(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="ms-region-trunc-py-", dir=base)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def region_file(self):
        for root, _, files in os.walk(self.dir):
            for f in files:
                if f.endswith(".region"):
                    return os.path.join(root, f)
        self.fail("no .region file under " + self.dir)

    def run_child(self, cut):
        return run_child(CHILD, [self.dir, str(SIZE)],
                         lambda child: os.truncate(self.region_file(), cut))

    def check(self, cut):
        rc, lines = self.run_child(cut)
        self.assertNotEqual(rc, -signal.SIGBUS, "the app died of SIGBUS")
        self.assertEqual(rc, 0, lines)
        self.assertEqual(lines[-1], "done", lines)
        # A commit that reaches no file is reported, never returned as a generation.
        self.assertIn("commit failed Aborted", lines)

    def test_whole_file_cut(self):
        self.check(0)

    def test_data_pages_cut(self):
        self.check(4096)


if __name__ == "__main__":
    unittest.main()
