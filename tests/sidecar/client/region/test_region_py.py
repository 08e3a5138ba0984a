"""Tests of the Python region end (sidecar/client/python/modelswap/region.py) over the C ABI.

Commit, re-attach and rollback; each error path; an app process SIGKILLed mid-update (the
committed state survives, the uncommitted writes roll back); and the whole pod-restart path with
the C++ snapshot host (snapshot-host-test-bin): a Python-committed state made durable, then
restored into a new, empty shm dir where a Python app finds it. Run by CTest as
`python3 -m unittest test_region_py` from this directory with PYTHONPATH at
sidecar/client/python, $MODELSWAP_REGION_LIB at libmodelswap_region.so and $SNAPSHOT_HOST_BIN.
Every child process is bounded by a timeout.
"""
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest

from modelswap.region import Region, RegionError, load_library

HOST = os.environ.get("SNAPSHOT_HOST_BIN", "")
BLOCK = 4096
SIZE = 4 * BLOCK
TIMEOUT = 60


class RegionPyTest(unittest.TestCase):
    def setUp(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="ms-region-py-", dir=base)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_commit_reattach_and_rollback(self):
        with Region("state", SIZE, shm_dir=self.dir) as r:
            self.assertTrue(r.info.created)
            self.assertEqual(r.size, SIZE)
            r.write(10, b"hello")
            r.mark_dirty(BLOCK, 3)
            r.data[BLOCK:BLOCK + 3] = b"abc"
            self.assertEqual(r.commit(), 1)
            self.assertEqual(r.generation, 1)
            self.assertEqual(r.durable_generation, 0)  # no agent here
            r.write(10, b"XXXXX")  # never committed
        with Region("state", SIZE, shm_dir=self.dir) as r:
            self.assertFalse(r.info.created)
            self.assertEqual(r.info.generation, 1)
            self.assertEqual(r.info.rolled_back_blocks, 1)
            self.assertEqual(bytes(r.data[10:15]), b"hello")
            self.assertEqual(bytes(r.data[BLOCK:BLOCK + 3]), b"abc")

    def test_errors_name_the_problem(self):
        with self.assertRaises(RegionError) as e:
            Region("bad/name", SIZE, shm_dir=self.dir)
        self.assertEqual(e.exception.code, "InvalidArgument")
        with self.assertRaises(RegionError) as e:
            Region("state", SIZE, shm_dir=self.dir, block_bytes=1000)
        self.assertIn("power of two", e.exception.message)
        r = Region("state", SIZE, shm_dir=self.dir)
        with self.assertRaises(RegionError) as e:
            Region("state", SIZE, shm_dir=self.dir)
        self.assertEqual(e.exception.code, "FailedPrecondition")
        self.assertIn("another live app", e.exception.message)
        with self.assertRaises(RegionError) as e:
            r.mark_dirty(SIZE - 1, 2)
        self.assertEqual(e.exception.code, "InvalidArgument")
        self.assertIn("outside", e.exception.message)
        with self.assertRaises(TypeError):
            r.write(0, 5)  # not bytes-like
        r.close()
        r.close()  # idempotent
        with self.assertRaises(RegionError) as e:
            r.commit()
        self.assertEqual(e.exception.code, "FailedPrecondition")
        with self.assertRaises(RegionError) as e:
            Region("state", SIZE + BLOCK, shm_dir=self.dir)
        self.assertIn("size mismatch", e.exception.message)
        with self.assertRaises(RegionError) as e:
            load_library("/nonexistent/libmodelswap_region.so")
        self.assertEqual(e.exception.code, "NotFound")

    def test_close_refuses_while_views_are_exported(self):
        r = Region("state", SIZE, shm_dir=self.dir)
        held = pickle.PickleBuffer(r.data)  # holds a buffer export of r.data itself
        with self.assertRaises(RegionError) as e:
            r.close()
        self.assertEqual(e.exception.code, "FailedPrecondition")
        del held
        r.close()

    def test_close_refuses_while_a_slice_is_alive(self):
        r = Region("state", SIZE, shm_dir=self.dir)
        head = r.data[:16]  # a derived view: would dangle after unmapping
        with self.assertRaises(RegionError) as e:
            r.close()
        self.assertEqual(e.exception.code, "FailedPrecondition")
        self.assertEqual(bytes(head), bytes(16))  # still mapped, still readable
        del head
        r.close()
        with Region("state", SIZE, shm_dir=self.dir):  # really detached
            pass

    def test_dropped_region_is_closed_when_its_last_view_goes(self):
        r = Region("state", SIZE, shm_dir=self.dir)
        r.write(0, b"x")
        r.commit()
        tail = r.data[-8:]
        del r  # no close(): the slice keeps the mapping (and the attachment) alive
        with self.assertRaises(RegionError) as e:
            Region("state", SIZE, shm_dir=self.dir)
        self.assertIn("another live app", e.exception.message)
        self.assertEqual(str(e.exception).count("FailedPrecondition"), 1)
        self.assertEqual(bytes(tail), bytes(8))
        del tail  # last view gone: closed
        with Region("state", SIZE, shm_dir=self.dir) as again:
            self.assertEqual(again.info.generation, 1)

    def test_numbers_c_would_wrap_are_rejected_in_python(self):
        with Region("state", SIZE, shm_dir=self.dir) as r:
            for call in (lambda: r.mark_dirty(-1, 1), lambda: r.mark_dirty(0, -1),
                         lambda: r.write(-4, b"x"), lambda: r.write(2**64, b"x"),
                         lambda: r.mark_dirty(0, 2**64 + 1)):
                with self.assertRaises(RegionError) as e:
                    call()
                self.assertEqual(e.exception.code, "InvalidArgument")
                self.assertIn("must be in [0, 2**64)", e.exception.message)
            self.assertEqual(bytes(r.data[:1]), b"\0", "nothing was written at a wrapped offset")
        for kwargs in ({"size": -SIZE}, {"size": SIZE, "block_bytes": 2**32}):
            with self.assertRaises(RegionError) as e:
                Region("other", shm_dir=self.dir, **kwargs)
            self.assertEqual(e.exception.code, "InvalidArgument")

    def test_nul_in_a_name_is_rejected_not_truncated(self):
        with self.assertRaises(RegionError) as e:
            Region("state\0other", SIZE, shm_dir=self.dir)
        self.assertEqual(e.exception.code, "InvalidArgument")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "regions", "state.region")))

    def test_threads_share_a_region_without_losing_changes(self):
        rounds, threads = 300, 4
        with Region("state", SIZE, shm_dir=self.dir) as r:
            def worker(block):
                for n in range(1, rounds + 1):
                    r.write(block * BLOCK, n.to_bytes(8, "little") * (BLOCK // 8))
                    r.commit()
            ts = [threading.Thread(target=worker, args=(b,)) for b in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(TIMEOUT)
            r.commit()
        with Region("state", SIZE, shm_dir=self.dir) as r:
            self.assertEqual(r.info.rolled_back_blocks, 0)
            for b in range(threads):
                self.assertEqual(bytes(r.data[b * BLOCK:(b + 1) * BLOCK]),
                                 rounds.to_bytes(8, "little") * (BLOCK // 8), f"block {b}")

    def test_forked_child_neither_uses_nor_keeps_the_region(self):
        # A pre-forking server: the parent opens the region and forks a worker, then is SIGKILLed
        # while the worker lives on. The worker's calls fail, and it must not keep the parent's
        # attach lock: the parent's restart attaches.
        app = textwrap.dedent(f"""
            import os, signal, sys, time
            from modelswap.region import Region, RegionError
            r = Region("state", {SIZE}, shm_dir={self.dir!r})
            def say(*words):  # one write(2) per line: parent and child share the pipe
                os.write(1, (" ".join(map(str, words)) + "\\n").encode())
            r.write(0, b"parent")
            r.commit()
            pid = os.fork()
            if pid == 0:
                try:
                    r.commit()
                    say("child-committed")
                except RegionError as e:
                    say("child-refused", e.code)
                say("child-data", bytes(r.data[:6]).hex())  # let go: zeros
                null = os.open(os.devnull, os.O_WRONLY)  # let the test's pipe reach EOF
                os.dup2(null, 1)
                os.dup2(null, 2)
                time.sleep({TIMEOUT})
                os._exit(0)
            say("child", pid)
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGKILL)
        """)
        p = subprocess.run([sys.executable, "-c", app], timeout=TIMEOUT, capture_output=True,
                           text=True)
        lines = p.stdout.split("\n")
        self.assertTrue(any(l.startswith("child ") for l in lines), p.stdout + p.stderr)
        child = int(next(l for l in lines if l.startswith("child ")).split()[1])
        try:
            self.assertEqual(p.returncode, -signal.SIGKILL)
            self.assertIn("child-refused FailedPrecondition", lines)
            self.assertIn("child-data 000000000000", lines)
            os.kill(child, 0)  # the worker still lives
            with Region("state", SIZE, shm_dir=self.dir) as r:
                self.assertEqual(bytes(r.data[:6]), b"parent")
        finally:
            os.kill(child, signal.SIGKILL)

    def test_with_block_ends_quietly_while_a_view_is_alive(self):
        with Region("state", SIZE, shm_dir=self.dir) as r:
            head = r.data[:8]
        with self.assertRaises(RegionError) as e:
            r.commit()
        self.assertEqual(e.exception.code, "FailedPrecondition")
        with self.assertRaises(RegionError) as e:  # still attached: head keeps the mapping
            Region("state", SIZE, shm_dir=self.dir)
        self.assertIn("another live app", e.exception.message)
        self.assertEqual(bytes(head), bytes(8))
        del head
        with Region("state", SIZE, shm_dir=self.dir):
            pass
        with self.assertRaises(ValueError):  # an exception in the block is not replaced
            with Region("state", SIZE, shm_dir=self.dir) as r:
                head = r.data[:8]
                raise ValueError("app error")
        del head

    def test_sigkill_mid_update_keeps_the_last_commit(self):
        # The app stamps every block with the same counter and commits, 200 times; then it
        # half-applies update 201 and SIGKILLs itself.
        app = textwrap.dedent(f"""
            import os, signal, struct
            from modelswap.region import Region
            r = Region("state", {SIZE}, shm_dir={self.dir!r})
            for n in range(1, 202):
                for b in range({SIZE // BLOCK}):
                    r.write(b * {BLOCK}, struct.pack("<Q", n) * ({BLOCK} // 8))
                    if n == 201 and b == 1:
                        os.kill(os.getpid(), signal.SIGKILL)
                r.commit()
        """)
        p = subprocess.run([sys.executable, "-c", app], timeout=TIMEOUT)
        self.assertEqual(p.returncode, -signal.SIGKILL)
        with Region("state", SIZE, shm_dir=self.dir) as r:
            self.assertEqual(r.info.generation, 200)
            self.assertEqual(r.info.rolled_back_blocks, 2)
            expected = (200).to_bytes(8, "little") * (SIZE // 8)
            self.assertEqual(bytes(r.data), expected)

    @unittest.skipUnless(HOST, "SNAPSHOT_HOST_BIN not set")
    def test_snapshot_host_persists_and_restores_a_python_region(self):
        snapshots = os.path.join(self.dir, "snapshots")
        shm_a, shm_b = os.path.join(self.dir, "pod-a"), os.path.join(self.dir, "pod-b")
        for d in (snapshots, shm_a, shm_b):
            os.makedirs(d)
        state = b"python state " * 100
        with Region("state", SIZE, shm_dir=shm_a) as r:
            r.write(100, state)
            gen = r.commit()
            host = subprocess.Popen([HOST, shm_a, snapshots, "20", "3"], stdout=subprocess.PIPE,
                                    text=True)
            watchdog = threading.Timer(TIMEOUT, host.kill)  # bounds the read loop below
            watchdog.start()
            try:
                self.assertEqual(host.stdout.readline().split()[:2], ["ready", "ok"])
                while True:  # bounded by the host's pass interval; the timeout below guards
                    line = host.stdout.readline()
                    self.assertTrue(line, "host exited before making the region durable")
                    if line.split() == ["durable", "state", str(gen)]:
                        break
            finally:
                watchdog.cancel()
                host.terminate()
                host.wait(timeout=TIMEOUT)
                host.stdout.close()
            self.assertGreaterEqual(r.durable_generation, gen)
        # A new pod: empty shm dir; the host restores before it says ready.
        host = subprocess.Popen([HOST, shm_b, snapshots, "20", "3"], stdout=subprocess.PIPE,
                                text=True)
        try:
            self.assertEqual(host.stdout.readline().split()[:2], ["ready", "ok"])
        finally:
            host.terminate()
            host.wait(timeout=TIMEOUT)
            host.stdout.close()
        with Region("state", SIZE, shm_dir=shm_b) as r:
            self.assertEqual(r.info.restored_gen, gen)
            self.assertEqual(r.info.generation, gen)
            self.assertEqual(bytes(r.data[100:100 + len(state)]), state)


if __name__ == "__main__":
    unittest.main()
