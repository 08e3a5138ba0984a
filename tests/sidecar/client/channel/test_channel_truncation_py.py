"""A channel file truncated under a Python reader or writer (sidecar/client/python/modelswap/
channel.py), in real processes: the child must not die of SIGBUS; every call after the
truncation raises ChannelDamaged (a ChannelError "Aborted" and a modelswap.errors.Damaged) naming
the truncation. Before channel.py checked the file size, the child died at its first load.

Run by CTest as `python3 -m unittest test_channel_truncation_py` from this directory with
PYTHONPATH pointing at sidecar/client/python. Each child is bounded (run_child,
tests/testing/child_process.py).
"""
import os
import shutil
import signal
import sys
import tempfile
import unittest

from modelswap import channel as ch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "testing"))
from child_process import run_child  # noqa: E402

# The child: opens the channel, says "ready", waits for a line, then calls `calls` (each must
# raise ChannelDamaged) and prints one line per call.
CHILD = r"""
import sys
from modelswap import channel as ch
from modelswap.errors import Damaged
shm, name, role = sys.argv[1:4]
if role == "reader":
    c = ch.ChannelReader(shm, name, start="oldest")
    calls = [("read_next", c.read_next), ("read_latest", c.read_latest),
             ("published_seq", c.published_seq), ("writer_epoch", c.writer_epoch)]
else:
    c = ch.ChannelWriter(shm, name, 8, 64)
    calls = [("publish", lambda: c.publish(b"x"))]
print("ready", flush=True)
sys.stdin.readline()
for what, call in calls:
    try:
        call()
        print(what, "returned", flush=True)
    except ch.ChannelDamaged as e:
        ok = isinstance(e, Damaged) and e.code == "Aborted" and "truncated" in str(e)
        print(what, "damaged" if ok else "wrong error: %r" % e, flush=True)
c.close()
"""


class ChannelTruncationPyTest(unittest.TestCase):
    def setUp(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="ms-chan-trunc-py-", dir=base)
        self.path = ch.channel_path(self.dir, "t")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_child(self, role, size):
        """Starts the child, truncates the file to `size` once it is ready, returns its
        (returncode, output lines after "ready")."""
        return run_child(CHILD, [self.dir, "t", role],
                         lambda child: os.truncate(self.path, size))

    def publish_some(self):
        with ch.ChannelWriter(self.dir, "t", 8, 64) as w:
            for i in range(20):
                w.publish(b"m%d" % i)

    def assert_survived(self, rc, lines, calls):
        self.assertNotEqual(rc, -signal.SIGBUS, "the child died of SIGBUS")
        self.assertEqual(rc, 0, lines)
        self.assertEqual(lines, [c + " damaged" for c in calls])

    def test_reader_whole_file_cut(self):
        self.publish_some()
        rc, lines = self.run_child("reader", 0)
        self.assert_survived(rc, lines,
                             ["read_next", "read_latest", "published_seq", "writer_epoch"])

    def test_reader_slots_cut(self):
        # Cut inside the first page (this small ring fits in it): nothing faults, the slots read
        # zeros, and before the size check the reader returned None as if nothing was published.
        self.publish_some()
        rc, lines = self.run_child("reader", ch.HEADER_BYTES)
        self.assert_survived(rc, lines,
                             ["read_next", "read_latest", "published_seq", "writer_epoch"])

    def test_writer_cut(self):
        rc, lines = self.run_child("writer", 0)
        self.assert_survived(rc, lines, ["publish"])


if __name__ == "__main__":
    unittest.main()
