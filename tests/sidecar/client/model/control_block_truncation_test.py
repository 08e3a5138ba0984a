"""The control block truncated under a Python app (sidecar/client/python/modelswap/model.py), in
real processes: the app must not die of SIGBUS; acquire() raises Unavailable naming the
truncation (never a record read as zeros), heartbeats (called, or the daemon thread's) survive,
and the handle acquired before stays readable. Before model.py checked the file size, the app
died at its next acquire (file cut to 0) or heartbeat (slot pages cut), or reported "no active
version yet" from a zeroed record (cut inside the first page). Once the agent recreates the file,
the app re-attaches and acquires again.

usage: control_block_truncation_test.py SIDECAR_BINARY   (the binary writes the version file)
"""
import os
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "sidecar",
                                "client", "python"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "testing"))
from child_process import run_child  # noqa: E402
from modelswap import model  # noqa: E402

# The child's first argument: where it imports modelswap from (this test's copy).
PACKAGE_DIR = model.__file__.rsplit("/modelswap/", 1)[0]

# The app: attaches, acquires, says "ready", waits for a line, then reports each call.
CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from modelswap import model
shm, thread = sys.argv[2], sys.argv[3] == "thread"
m = model.Model("m", shm_dir=shm, heartbeat_thread=thread)
h = m.acquire()
want = bytes(h.get(b"7"))
print("ready", flush=True)
sys.stdin.readline()
if thread:
    time.sleep(0.3)  # several beats of the daemon thread (interval 1 ms in this file)
else:
    m.heartbeat()
try:
    m.acquire()
    print("acquire returned", flush=True)
except model.Unavailable as e:
    print("acquire truncated" if "truncated" in str(e) else "acquire other: %s" % e, flush=True)
print("held ok" if bytes(h.get(b"7")) == want else "held differs", flush=True)
m.close()
"""


def make_control_block(shm, version_path):
    """A control block as the agent writes it (control_block.h), naming version_path."""
    with open(version_path, "rb") as f:
        hdr = f.read(4096)
    size = struct.unpack_from("<Q", hdr, 16)[0]
    checksum = struct.unpack_from("<Q", hdr, 4088)[0]
    b = bytearray(model.FILE_BYTES)
    struct.pack_into("<QIIQII", b, 0, model.MAGIC, model.LAYOUT_VERSION, model.SLOTS_OFFSET,
                     model.FILE_BYTES, model.SLOT_COUNT, model.SLOT_BYTES)
    struct.pack_into("<Q", b, model.LAYOUT["heartbeat_interval_ns"], 2_000_000)
    b[model.LAYOUT["model"]:model.LAYOUT["model"] + 1] = b"m"
    r = model.LAYOUT["record"]
    struct.pack_into("<QQQQQQ", b, r, 2, 1, size, checksum, model.STATE_ACTIVE, 0)
    b[r + 48:r + 50] = b"v1"
    p = version_path.encode()
    b[r + 112:r + 112 + len(p)] = p
    struct.pack_into("<Q", b, 1392, 1)  # layer_count: one full version
    with open(os.path.join(shm, "m.ctl"), "wb") as f:
        f.write(b)


# The app after the agent recreated the control block (a new file renamed over the cut one): the
# heartbeat thread re-attaches, and acquire() works again.
RECREATED = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from modelswap import model
m = model.Model("m", shm_dir=sys.argv[2], heartbeat_thread=True)
m.acquire()
print("ready", flush=True)
sys.stdin.readline()  # cut
try:
    m.acquire()
    print("acquire returned after the cut", flush=True)
except model.Unavailable:
    pass
print("cut seen", flush=True)
sys.stdin.readline()  # recreated
deadline = time.monotonic() + 10
while True:
    try:
        h = m.acquire()
        print("acquire ok" if h.get(b"7") is not None else "acquire empty", flush=True)
        break
    except model.Unavailable as e:
        if time.monotonic() > deadline:
            print("still unavailable: %s" % e, flush=True)
            break
        time.sleep(0.01)
m.close()
"""


def run_recreated(shm, version):
    def cut_then_recreate(child):
        os.truncate(os.path.join(shm, "m.ctl"), 0)
        child.send("cut")
        child.expect("cut seen")
        tmp = os.path.join(shm, "new")
        os.mkdir(tmp)
        make_control_block(tmp, version)
        os.rename(os.path.join(tmp, "m.ctl"), os.path.join(shm, "m.ctl"))
    return run_child(RECREATED, [PACKAGE_DIR, shm], cut_then_recreate, last="recreated")


def run(shm, cut, thread):
    return run_child(CHILD, [PACKAGE_DIR, shm, "thread" if thread else "call"],
                     lambda child: os.truncate(os.path.join(shm, "m.ctl"), cut))


def main():
    sidecar = sys.argv[1]
    failed = passed = 0
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sidecar, "write", "--root", d, "--model", "m", "--version", "v1",
                        "--generate-bytes", str(64 << 10), "--value-bytes", "100", "--whole-file"],
                       check=True, stdout=subprocess.DEVNULL)
        version = os.path.join(d, "m", "versions", "v1.msf")
        cases = [  # (cut to, heartbeat thread, what acquire() must say)
            (0, False, "acquire truncated"),
            (100, False, "acquire truncated"),
            (model.SLOTS_OFFSET, False, None),  # the record's page survives: either answer
            (model.SLOTS_OFFSET, True, None),
            (0, True, "acquire truncated"),
        ]
        for cut, thread, want in cases:
            shm = os.path.join(d, "shm-%d-%s" % (cut, thread))
            os.mkdir(shm)
            make_control_block(shm, version)
            rc, lines = run(shm, cut, thread)
            ok = (rc == 0 and len(lines) == 2 and lines[1] == "held ok"
                  and (lines[0] == want if want else
                       lines[0] in ("acquire truncated", "acquire returned")))
            if ok:
                passed += 1
            else:
                failed += 1
                died = " (SIGBUS)" if rc == -signal.SIGBUS else ""
                print("FAIL cut=%d thread=%s: rc=%d%s %r" % (cut, thread, rc, died, lines))
        shm = os.path.join(d, "shm-recreated")
        os.mkdir(shm)
        make_control_block(shm, version)
        rc, lines = run_recreated(shm, version)
        if rc == 0 and lines == ["acquire ok"]:
            passed += 1
        else:
            failed += 1
            print("FAIL recreated: rc=%d %r" % (rc, lines))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


main()
