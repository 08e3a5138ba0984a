"""The Python client's version reads against hostile files: a FIFO where the version file should
be is refused without blocking, and a file truncated under a handle raises Damaged (for every
later lookup too), never a value and never SIGBUS.

usage: version_read_test.py SIDECAR_BINARY
"""
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "sidecar",
                                "client", "python"))
from modelswap import model  # noqa: E402


def main():
    sidecar = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        try:
            model._Version(fifo, 1, "v1", 0, 0)  # blocked in open() forever before O_NONBLOCK
            raise AssertionError("a FIFO was accepted as a version file")
        except model.Corruption as e:
            assert "not a regular file" in str(e), e

        subprocess.run([sidecar, "write", "--root", d, "--model", "m", "--version", "v1",
                        "--generate-bytes", str(256 << 10), "--value-bytes", "100", "--whole-file"],
                       check=True, stdout=subprocess.DEVNULL)
        path = os.path.join(d, "m", "versions", "v1.msf")
        with open(path, "rb") as f:
            hdr = f.read(4096)
        size = struct.unpack_from("<Q", hdr, 16)[0]
        checksum = struct.unpack_from("<Q", hdr, 4088)[0]
        v = model._Version(path, 1, "v1", checksum, size)
        h = model.Handle(v)
        want = bytes(h.get(b"7"))
        assert want.startswith(b"m/v1/7/"), want
        os.truncate(path, 4096)
        for key in (b"7", b"8", b"no such key"):
            try:
                got = h.get(key)
                raise AssertionError("lookup of %r after truncation returned %r" % (key, got))
            except model.Damaged as e:
                assert "damaged" in str(e), e
    print("1 passed, 0 failed")


main()
