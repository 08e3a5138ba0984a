"""Tests of the pure-Python channel end (sidecar/client/python/modelswap/channel.py).

Layout agreement with the C++ build, Python <-> C++ interop both ways (separate processes: the
C++ side is channel_peer, path in $CHANNEL_PEER), crash recovery across languages, and one test
per error path. Run by CTest as `python3 -m unittest test_channel_py` from this directory with
PYTHONPATH pointing at sidecar/client/python. Every child process is bounded (alarm in the peer,
timeout here).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import payload
from modelswap import channel as ch

PEER = os.environ.get("CHANNEL_PEER", "")
TIMEOUT = 120


def peer(*args):
    return [PEER, *[str(a) for a in args]]


class ChannelPyTest(unittest.TestCase):
    def setUp(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="ms-chan-py-", dir=base)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_reader(self, name, *extra):
        p = subprocess.Popen(peer("read", "--shm", self.dir, "--name", name, *extra),
                             stdout=subprocess.PIPE, text=True)
        self.assertTrue(p.stdout.readline().startswith("ready "))
        return p

    def finish(self, p):
        # Read through the same buffered stream as readline() in start_reader (communicate()
        # with a timeout reads the raw pipe and would drop lines already buffered). Bounded:
        # the peer ends by itself or by its alarm(120).
        out = p.stdout.read()
        p.wait(timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, out)
        self.assertTrue(out.strip(), f"no output, returncode {p.returncode}")
        return json.loads(out.strip().splitlines()[-1])


@unittest.skipUnless(PEER, "CHANNEL_PEER not set")
class InteropTest(ChannelPyTest):
    def test_layout_matches_cpp_header(self):
        cpp = json.loads(subprocess.run(peer("layout"), capture_output=True, text=True,
                                        check=True, timeout=TIMEOUT).stdout)
        py = {"magic": ch.MAGIC, "layout_version": ch.LAYOUT_VERSION,
              "header_bytes": ch.HEADER_BYTES, "slot_header_bytes": ch.SLOT_HEADER_BYTES,
              "published_seq": ch.OFF_PUBLISHED_SEQ, "writer_epoch": ch.OFF_WRITER_EPOCH,
              "slot_count": ch.OFF_SLOT_COUNT, "message_bytes": ch.OFF_MESSAGE_BYTES,
              "slot_stride": ch.OFF_SLOT_STRIDE, "file_bytes": ch.OFF_FILE_BYTES,
              "created_unix_ns": ch.OFF_CREATED_UNIX_NS, "slot_length": ch.SLOT_OFF_LENGTH,
              "stride_1": ch.slot_stride(1), "stride_64": ch.slot_stride(64),
              "stride_3000": ch.slot_stride(3000), "max_slots": ch.MAX_SLOTS,
              "max_message_bytes": ch.MAX_MESSAGE_BYTES}
        self.assertEqual(py, cpp)

    def test_cpp_writer_python_reader(self):
        ch.ChannelWriter(self.dir, "c2py", 64, 256).close()
        r = ch.ChannelReader(self.dir, "c2py", 256)
        w = subprocess.Popen(peer("write", "--shm", self.dir, "--name", "c2py", "--bytes", 256,
                                  "--slots", 64, "--count", 20000, "--stop"),
                             stdout=subprocess.PIPE, text=True)
        prev, received = 0, 0
        while True:
            m = r.read_next()
            if m is None:
                continue
            self.assertEqual(m.seq, prev + 1 + m.missed)
            prev, received = m.seq, received + 1
            if payload.is_stop(m.seq, m.data):
                break
            self.assertTrue(payload.check(m.seq, m.data), f"torn message {m.seq}")
            self.assertEqual(len(m.data), 256)
        self.finish(w)
        self.assertEqual(prev, 20001)
        self.assertEqual(received + r.total_missed, 20001)

    def test_python_writer_cpp_reader(self):
        w = ch.ChannelWriter(self.dir, "py2c", 16, 200)
        r = self.start_reader("py2c", "--bytes", 200, "--until", 5000)
        for _ in range(5000):
            w.publish(payload.fill(w.last_published + 1, 200))
        stats = self.finish(r)
        self.assertEqual(stats["last"], 5000)
        self.assertEqual(stats["received"] + stats["missed"], 5000)

    def test_python_reader_under_fast_cpp_writer_never_tears(self):
        # The C++ writer runs flat out into a ring of 4 until the Python reader has checked
        # 1000 messages, so most copies race with a write of the same slot.
        ch.ChannelWriter(self.dir, "fast", 4, 3000).close()
        r = ch.ChannelReader(self.dir, "fast", 3000)
        w = subprocess.Popen(peer("write", "--shm", self.dir, "--name", "fast", "--bytes", 3000,
                                  "--slots", 4, "--forever"), stdout=subprocess.PIPE)
        try:
            prev, checked = 0, 0
            while checked < 1000:
                m = r.read_next()
                if m is None:
                    self.assertIsNone(w.poll(), "writer died")
                    continue
                self.assertEqual(m.seq, prev + 1 + m.missed)
                self.assertTrue(payload.check(m.seq, m.data), f"torn message {m.seq}")
                prev, checked = m.seq, checked + 1
        finally:
            w.kill()
            w.communicate(timeout=TIMEOUT)
        print(f"python reader checked {checked}, discarded {r.torn_retries} torn copies")

    def test_python_reads_return_against_flooding_cpp_writer(self):
        # The flood peer publishes far faster than Python copies 64 KiB (channel_peer.cc): each
        # call must give up after the bound (channel.py, _READ_TRIES) instead of retrying for as
        # long as the writer publishes. Counted in tries per call, never timed.
        ch.ChannelWriter(self.dir, "flood", 2, 65536).close()
        w = subprocess.Popen(peer("flood", "--shm", self.dir, "--name", "flood", "--bytes", 65536,
                                  "--slots", 2), stdout=subprocess.PIPE)
        try:
            r = ch.ChannelReader(self.dir, "flood", 65536)
            for _ in range(100_000):
                if r.published_seq() > 1000:
                    break
                os.sched_yield()
            for read in (r.read_latest, r.read_next):
                r.busy_returns = 0
                for _ in range(2000):
                    before = r.torn_retries
                    m = read()
                    self.assertLessEqual(r.torn_retries - before, ch._READ_TRIES)
                    if m is not None:
                        self.assertTrue(payload.check(0, m.data))
                    if r.busy_returns >= 3:
                        break
                    os.sched_yield()
                print(f"{read.__name__}: {r.busy_returns} busy returns")
        finally:
            w.kill()
            w.communicate(timeout=TIMEOUT)

    def test_cpp_crash_mid_write_then_python_reader_and_writer(self):
        ch.ChannelWriter(self.dir, "crash", 16, 128).close()
        reader = ch.ChannelReader(self.dir, "crash", 128)
        c = subprocess.run(peer("crash", "--shm", self.dir, "--name", "crash", "--bytes", 128,
                                "--slots", 16, "--count", 10), capture_output=True,
                           timeout=TIMEOUT)
        self.assertEqual(c.returncode, -9)  # SIGKILL
        for seq in range(1, 11):
            m = reader.read_next()
            self.assertEqual(m.seq, seq)
            self.assertTrue(payload.check(seq, m.data))
        self.assertIsNone(reader.read_next())  # message 11 is half-written: never returned
        self.assertEqual(reader.read_latest().seq, 10)
        w = ch.ChannelWriter(self.dir, "crash", 16, 128)
        self.assertEqual(w.abandoned_slots, 1)
        self.assertEqual(w.last_published, 10)
        self.assertEqual(w.publish(payload.fill(11, 128)), 11)
        m = reader.read_next()
        self.assertEqual((m.seq, m.missed), (11, 0))
        self.assertTrue(payload.check(11, m.data))

    def test_python_writer_sigkilled_then_cpp_reader_and_writer_continue(self):
        ch.ChannelWriter(self.dir, "pykill", 8, 1024).close()
        watch = ch.ChannelReader(self.dir, "pykill", 1024)
        code = ("import sys; sys.path[:0] = sys.argv[1:3]; import payload; "
                "from modelswap import channel as ch; "
                "w = ch.ChannelWriter(sys.argv[3], 'pykill', 8, 1024)\n"
                "while True: w.publish(payload.fill(w.last_published + 1, 1024))")
        here = os.path.dirname(os.path.abspath(__file__))
        pkg = os.path.join(here, "..", "..", "..", "..", "sidecar", "client", "python")
        p = subprocess.Popen([sys.executable, "-c", code, here, pkg, self.dir])
        try:
            target = 200 + os.getpid() % 300  # varies between runs
            while watch.published_seq() < target:
                self.assertIsNone(p.poll(), "python writer died")
        finally:
            p.kill()
            p.wait(timeout=TIMEOUT)
        last = watch.published_seq()
        stats = self.finish(self.start_reader("pykill", "--bytes", 1024, "--start", "oldest",
                                              "--until", last))
        self.assertEqual(stats["last"], last)  # every message still in the ring checked whole
        w = subprocess.run(peer("write", "--shm", self.dir, "--name", "pykill", "--bytes", 1024,
                                "--slots", 8, "--count", 5), capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(w.returncode, 0, w.stderr)
        self.assertEqual(json.loads(w.stdout)["first"], last + 1)

    def test_writer_lock_is_shared_across_languages(self):
        w = ch.ChannelWriter(self.dir, "lock", 4, 64)
        c = subprocess.run(peer("write", "--shm", self.dir, "--name", "lock", "--bytes", 64,
                                "--slots", 4, "--count", 1), capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(c.returncode, 1)
        self.assertIn("already has a live writer", c.stderr)
        w.close()
        with self.assertRaises(ch.ChannelError) as e:
            with ch.ChannelWriter(self.dir, "lock", 4, 64):
                ch.ChannelWriter(self.dir, "lock", 4, 64)
        self.assertEqual(e.exception.code, "FailedPrecondition")


class PythonOnlyTest(ChannelPyTest):
    def test_round_trip_loss_and_mailbox(self):
        w = ch.ChannelWriter(self.dir, "py", 4, 32)
        r = ch.ChannelReader(self.dir, "py", 32)
        self.assertIsNone(r.read_next())
        self.assertIsNone(r.read_latest())
        for _ in range(10):
            w.publish(payload.fill(w.last_published + 1, 32))
        m = r.read_next()
        self.assertEqual((m.seq, m.missed), (7, 6))
        self.assertTrue(payload.check(7, m.data))
        m = r.read_latest()
        self.assertEqual((m.seq, m.missed), (10, 2))
        self.assertEqual(r.total_missed, 8)
        self.assertEqual(w.publish(b"hi"), 11)
        self.assertEqual(r.read_next().data, b"hi")

    def test_interrupted_publish_is_finished_not_rewritten(self):
        # A publish interrupted (an exception from a signal handler) after its even version
        # store: the next publish must not rewrite that id under the same version.
        w = ch.ChannelWriter(self.dir, "intr", 4, 16)
        r = ch.ChannelReader(self.dir, "intr", 16, start="oldest")
        w.publish(b"one")
        m = w._m
        seq = w._next
        off = m.slot(seq)
        m.mm[off + ch.SLOT_HEADER_BYTES:off + ch.SLOT_HEADER_BYTES + 3] = b"two"
        ch._U32.pack_into(m.mm, off + ch.SLOT_OFF_LENGTH, 3)
        ch._U64.pack_into(m.mm, off, 2 * seq)  # ... and there it was interrupted
        self.assertEqual(w.publish(b"three"), seq + 1)
        self.assertEqual([r.read_next().data for _ in range(3)], [b"one", b"two", b"three"])

    def test_read_latest_of_a_one_slot_channel_mid_rewrite_is_none(self):
        w = ch.ChannelWriter(self.dir, "one", 1, 16)
        r = ch.ChannelReader(self.dir, "one", 16)
        w.publish(b"x")
        ch._U64.pack_into(w._m.mm, w._m.slot(2), 2 * 2 - 1)  # a writer died writing id 2
        self.assertIsNone(r.read_latest())

    def test_read_latest_returns_when_the_newest_slot_disagrees(self):
        # As ChannelTest.ReadLatestReturnsWhenTheNewestSlotDisagreesWithPublishedSeq: a slot
        # older than published_seq, or claiming a newer message never published, ends in None.
        w = ch.ChannelWriter(self.dir, "stuck", 4, 16)
        r = ch.ChannelReader(self.dir, "stuck", 16)
        for payload in (b"a", b"b", b"c"):
            w.publish(payload)
        slot = w._m.slot(3)
        ch._U64.pack_into(w._m.mm, slot, 0)
        self.assertIsNone(r.read_latest())
        ch._U64.pack_into(w._m.mm, slot, 2 * 7)
        self.assertIsNone(r.read_latest())
        ch._U64.pack_into(w._m.mm, slot, 2 * 3)
        self.assertEqual(r.read_latest().data, b"c")

    def test_sequence_continues_across_python_writer_restart(self):
        with ch.ChannelWriter(self.dir, "re", 8, 16) as w:
            w.publish(b"a")
            w.publish(b"b")
        r = ch.ChannelReader(self.dir, "re", 16, start="oldest")
        with ch.ChannelWriter(self.dir, "re", 8, 16) as w:
            self.assertEqual(w.publish(b"c"), 3)
        self.assertEqual([r.read_next().data for _ in range(3)], [b"a", b"b", b"c"])
        self.assertEqual(r.writer_epoch(), 2)

    def assertChannelError(self, code, text, fn, *args):
        with self.assertRaises(ch.ChannelError) as e:
            fn(*args)
        self.assertEqual(e.exception.code, code)
        self.assertIn(text, str(e.exception))

    def test_missing_channel_is_not_found(self):
        self.assertChannelError("NotFound", "nobody.chan", ch.ChannelReader, self.dir, "nobody")

    def test_bad_name_is_invalid(self):
        self.assertChannelError("InvalidArgument", "channel name", ch.ChannelReader, self.dir,
                                "../x")

    def test_bad_slot_count_is_invalid(self):
        self.assertChannelError("InvalidArgument", "slot_count 3", ch.ChannelWriter, self.dir,
                                "c", 3, 8)

    def test_message_size_mismatch_is_reported(self):
        ch.ChannelWriter(self.dir, "sz", 4, 64).close()
        self.assertChannelError("FailedPrecondition", "message size mismatch: channel carries "
                                "64-byte messages, caller expects 128", ch.ChannelReader,
                                self.dir, "sz", 128)

    def test_slot_count_mismatch_is_reported(self):
        ch.ChannelWriter(self.dir, "sl", 4, 64).close()
        self.assertChannelError("FailedPrecondition", "slot count mismatch", ch.ChannelWriter,
                                self.dir, "sl", 8, 64)

    def test_bad_magic_is_corruption(self):
        ch.ChannelWriter(self.dir, "mg", 4, 64).close()
        with open(ch.channel_path(self.dir, "mg"), "r+b") as f:
            f.write(b"\0" * 8)
        self.assertChannelError("Corruption", "bad magic", ch.ChannelReader, self.dir, "mg")

    def test_truncated_file_is_corruption(self):
        ch.ChannelWriter(self.dir, "tr", 4, 64).close()
        os.truncate(ch.channel_path(self.dir, "tr"), 300)
        self.assertChannelError("Corruption", "truncated", ch.ChannelReader, self.dir, "tr")

    def test_tiny_file_is_corruption(self):
        ch.ChannelWriter(self.dir, "ti", 4, 64).close()
        os.truncate(ch.channel_path(self.dir, "ti"), 12)
        self.assertChannelError("Corruption", "smaller than the 256-byte header",
                                ch.ChannelReader, self.dir, "ti")

    def test_too_long_message_is_refused(self):
        with ch.ChannelWriter(self.dir, "ln", 4, 8) as w:
            self.assertChannelError("InvalidArgument", "exceeds 8", w.publish, b"x" * 9)
            self.assertEqual(w.last_published, 0)


if __name__ == "__main__":
    unittest.main()
