"""The Python client reads delta versions as chains, like the C++ client: newest layer first,
the first value or tombstone answers; the chain's links, the record's chain fields and each
layer's checksum are checked with errors naming the mismatch; a damaged lower layer damages the
version; a record with layer_count 0 or 1 reads one full version exactly as before chains.

The .msf files come from the real writer (`modelswap-sidecar write --delta-on`, a TSV line
`key<TAB>\\N` deletes the key; a few cases patch a header field and sign the header again, to
make links the writer refuses to make); the control blocks are written here, field by field from
model.LAYOUT (layout_test.py checks LAYOUT against control_block.h), so each record case can be
set up exactly, malformed ones included.

usage: chain_read_test.py SIDECAR_BINARY
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "sidecar",
                                "client", "python"))
from modelswap import model  # noqa: E402
from modelswap.xxh3 import xxh3_64  # noqa: E402

SIDECAR = sys.argv.pop(1)
L = model.LAYOUT

# The versions: v1 full; v2 on v1; v3 on v2; v4 on v3; v5 on v4 (4 deltas). None: a tombstone.
BASE = dict([(b"k%d" % i, b"base-%d" % i) for i in range(200)] +
            [(b"shadow", b"v1"), (b"gone", b"v1"), (b"back", b"v1")])
DELTAS = [
    ("v2", "v1", {b"shadow": b"v2", b"gone": None, b"new2": b"v2", b"back": None}),
    ("v3", "v2", {b"shadow": b"v3"}),
    ("v4", "v3", {b"new4": b"v4"}),
    ("v5", "v4", {b"back": b"v5", b"k7": None}),
]


def write_version(root, version, rows, delta_on=None):
    """Writes one version with the real writer; (path, header checksum, size) of its .msf."""
    os.makedirs(root, exist_ok=True)
    tsv = os.path.join(root, version + ".tsv")
    with open(tsv, "wb") as f:
        for k, v in rows.items():
            f.write(k + b"\t" + (b"\\N" if v is None else v) + b"\n")
    args = [SIDECAR, "write", "--root", root, "--model", "m", "--version", version,
            "--from-tsv", tsv, "--whole-file"]
    if delta_on:
        args += ["--delta-on", delta_on]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return file_identity(os.path.join(root, "m", "versions", version + ".msf"))


def file_identity(path):
    with open(path, "rb") as f:
        hdr = f.read(4096)
    return path, struct.unpack_from("<Q", hdr, 4088)[0], struct.unpack_from("<Q", hdr, 16)[0]


def patched_copy(src, dst, patches):
    """A copy of the .msf src with header bytes replaced ({offset: bytes}) and the header
    checksum signed again: a file the writer would not make, but whose header is consistent."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    for off, raw in patches.items():
        data[off:off + len(raw)] = raw
    struct.pack_into("<Q", data, 4088, xxh3_64(bytes(data[:4088]), 0))
    with open(dst, "wb") as f:
        f.write(data)
    return file_identity(dst)


def write_ctl(shm, version, top, lower=(), layer_count=None, chain=None, generation=7, seq=2):
    """A control block for model "m" whose record names `top` (path, checksum, size) and the
    lower layers [(path, checksum)...]; layer_count and chain override the derived fields."""
    buf = bytearray(model.FILE_BYTES)
    struct.pack_into("<QIIQII", buf, 0, model.MAGIC, model.LAYOUT_VERSION, model.SLOTS_OFFSET,
                     model.FILE_BYTES, model.SLOT_COUNT, model.SLOT_BYTES)
    struct.pack_into("<QQ", buf, L["heartbeat_interval_ns"], 10**9, 10**10)
    buf[L["model"]:L["model"] + 1] = b"m"
    path, checksum, size = top
    struct.pack_into("<QQQQQ", buf, L["record.seq"], seq, generation, size, checksum,
                     model.STATE_ACTIVE | (len(path) << 32))
    buf[L["record.version"]:L["record.version"] + len(version)] = version.encode()
    buf[L["record.path"]:L["record.path"] + len(path)] = path.encode()
    if chain is None:
        chain = b"".join(p.encode() + b"\n" for p, _ in lower)
    if layer_count is None:
        layer_count = len(lower) + 1
    struct.pack_into("<QQ", buf, L["record.layer_count"], layer_count, len(chain))
    for i, (_, c) in enumerate(lower):
        struct.pack_into("<Q", buf, L["record.layer_checksums"] + 8 * i, c)
    chain = chain[:model.CHAIN_BYTES]
    buf[L["record.chain_words"]:L["record.chain_words"] + len(chain)] = chain
    os.makedirs(shm, exist_ok=True)
    with open(os.path.join(shm, "m.ctl"), "r+b" if os.path.exists(os.path.join(shm, "m.ctl"))
              else "wb") as f:  # in place: an attached Model sees the new record
        f.write(buf)


class ChainReadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.root = os.path.join(cls.tmp, "volume")
        cls.files = {"v1": write_version(cls.root, "v1", BASE)}
        for version, base, rows in DELTAS:
            cls.files[version] = write_version(cls.root, version, rows, delta_on=base)
        cls.cases = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def lower(self, *versions):
        return [self.files[v][:2] for v in versions]

    def attach(self, version, top=None, lower=(), **kw):
        """A Model on a fresh control block naming `version` (top: its file) over `lower`."""
        ChainReadTest.cases += 1
        self.shm = os.path.join(self.tmp, "shm%d" % self.cases)
        write_ctl(self.shm, version, top or self.files[version], lower, **kw)
        m = model.Model("m", shm_dir=self.shm, heartbeat_thread=False)
        self.addCleanup(m.close)
        return m

    def expect(self, h, want):
        for key, value in want.items():
            got = h.get(key)
            self.assertEqual(None if got is None else bytes(got), value, key)

    def test_one_delta_on_a_full_version(self):
        h = self.attach("v2", lower=self.lower("v1")).acquire()
        self.expect(h, {b"shadow": b"v2",   # hit in the top layer
                        b"k5": b"base-5",    # hit in the base
                        b"gone": None,       # the tombstone hides the base's value
                        b"back": None,
                        b"new2": b"v2",      # only in the delta
                        b"absent": None})    # in no layer
        self.assertEqual(h.layer_count, 2)
        self.assertEqual([v for v, _ in h.layers], ["v2", "v1"])
        self.assertEqual(h.entry_count, 4)  # the delta's own entries, tombstones included

    def test_four_deltas(self):
        h = self.attach("v5", lower=self.lower("v4", "v3", "v2", "v1")).acquire()
        self.expect(h, {b"shadow": b"v3",   # the newest layer holding it wins (v3 over v2, v1)
                        b"gone": None,       # deleted in v2, never re-added
                        b"back": b"v5",      # deleted in v2, upserted again in v5
                        b"k7": None,         # deleted in the top layer
                        b"k8": b"base-8", b"new2": b"v2", b"new4": b"v4", b"absent": None})
        self.assertEqual(h.layer_count, 5)
        self.assertEqual([v for v, _ in h.layers], ["v5", "v4", "v3", "v2", "v1"])

    def test_full_version_reads_as_before_with_layer_count_0_or_1(self):
        for layer_count in (0, 1):
            # Chain fields beyond layer_count are not read at all (an old agent's zero
            # reserved3 reads as 0; garbage there must not matter either).
            h = self.attach("v1", layer_count=layer_count, chain=b"junk\nmore junk").acquire()
            self.expect(h, {b"k5": b"base-5", b"shadow": b"v1", b"gone": b"v1",
                            b"absent": None})
            self.assertEqual((h.layer_count, h.entry_count, h.version), (1, len(BASE), "v1"))

    def test_a_new_record_swaps_a_full_version_for_a_chain_and_back(self):
        m = self.attach("v1")
        h1 = m.acquire()
        write_ctl(self.shm, "v5", self.files["v5"], self.lower("v4", "v3", "v2", "v1"),
                  generation=8, seq=4)
        h5 = m.acquire()
        self.assertEqual((h5.version, h5.generation, h5.layer_count), ("v5", 8, 5))
        self.expect(h5, {b"shadow": b"v3", b"k7": None})
        self.expect(h1, {b"shadow": b"v1", b"k7": b"base-7"})  # the old handle keeps its version
        write_ctl(self.shm, "v2", self.files["v2"], self.lower("v1"), generation=9, seq=6)
        h2 = m.acquire()
        self.assertEqual((h2.version, h2.layer_count), ("v2", 2))
        self.expect(h2, {b"shadow": b"v2", b"k7": b"base-7", b"back": None})
        self.expect(h5, {b"back": b"v5"})

    def test_a_delta_alone_is_refused(self):
        for layer_count in (0, 1):
            m = self.attach("v2", layer_count=layer_count)
            with self.assertRaisesRegex(model.Corruption, r"v2 xxh3:[0-9a-f]{16} .* is a delta "
                                        r"on v1 xxh3:[0-9a-f]{16}, but the record names no layer"):
                m.acquire()

    def test_a_broken_link_is_refused(self):
        # Another v1 (same name, other content): v2's base checksum does not match it.
        other = os.path.join(self.tmp, "other")
        path, checksum, _ = write_version(other, "v1", {b"k5": b"other"})
        m = self.attach("v2", lower=[(path, checksum)])
        with self.assertRaisesRegex(
                model.Corruption, r"delta v2 names base v1 checksum xxh3:%016x, but the layer "
                r"below is v1 xxh3:%016x" % (self.files["v1"][1], checksum)):
            m.acquire()

    def test_a_skipped_layer_is_refused(self):
        m = self.attach("v5", lower=self.lower("v3", "v2", "v1"))
        with self.assertRaisesRegex(model.Corruption, r"delta v5 names base v4 .* the layer "
                                    r"below is v3 "):
            m.acquire()

    def test_a_full_version_above_another_layer_is_refused(self):
        m = self.attach("v1", lower=self.lower("v1"))
        with self.assertRaisesRegex(model.Corruption, r"v1 .* is a full version above"):
            m.acquire()

    def test_a_wrong_chain_depth_is_refused(self):
        top = patched_copy(self.files["v2"][0], os.path.join(self.tmp, "v2-depth2.msf"),
                           {520: struct.pack("<I", 2)})
        m = self.attach("v2", top=top, lower=self.lower("v1"))
        with self.assertRaisesRegex(model.Corruption, r"delta v2 xxh3:.* has chain_depth 2, but "
                                    r"the chain holds 1 delta\(s\) from the full base v1 up"):
            m.acquire()

    def test_a_layer_of_another_model_is_refused(self):
        top = patched_copy(self.files["v2"][0], os.path.join(self.tmp, "v2-other.msf"),
                           {64: b"x"})
        m = self.attach("v2", top=top, lower=self.lower("v1"))
        with self.assertRaisesRegex(model.Corruption, r"layer v1 .* is of model m, the chain's "
                                    r"top layer of model x"):
            m.acquire()

    def test_unknown_header_flags_are_refused(self):
        top = patched_copy(self.files["v2"][0], os.path.join(self.tmp, "v2-flags.msf"),
                           {52: struct.pack("<I", 3)})
        m = self.attach("v2", top=top, lower=self.lower("v1"))
        with self.assertRaisesRegex(model.Corruption, r"v2-flags.msf: unknown header flags 0x3"):
            m.acquire()

    def test_a_layer_other_than_the_agent_verified_is_refused(self):
        path, checksum = self.files["v1"][:2]
        m = self.attach("v2", lower=[(path, checksum ^ 1)])
        with self.assertRaisesRegex(model.Corruption, r"v1.msf: is not the file the agent "
                                    r"verified"):
            m.acquire()

    def test_malformed_chain_fields_are_refused(self):
        lower = self.lower("v1")
        for kw, why in (({"layer_count": 9}, r"layer_count 9 is above 8"),
                        ({"layer_count": 3}, r"chain paths do not match layer_count 3"),
                        ({"chain": b"no newline"}, r"chain paths do not match layer_count 2"),
                        ({"chain": b"\n"}, r"chain paths do not match layer_count 2")):
            m = self.attach("v2", lower=lower, **kw)
            with self.assertRaisesRegex(model.Corruption, why):
                m.acquire()

    def test_a_damaged_lower_layer_damages_the_version(self):
        copies = os.path.join(self.tmp, "copies")
        os.makedirs(copies, exist_ok=True)
        for v in ("v1", "v2"):
            shutil.copy(self.files[v][0], copies)
        top = file_identity(os.path.join(copies, "v2.msf"))
        base = file_identity(os.path.join(copies, "v1.msf"))
        h = self.attach("v2", top=top, lower=[base[:2]]).acquire()
        self.expect(h, {b"shadow": b"v2", b"k5": b"base-5"})
        os.truncate(base[0], 4096)
        for key in (b"k6", b"shadow", b"k5"):  # a top-layer hit too: the version is damaged
            with self.assertRaisesRegex(model.Damaged, r"v2 \(generation 7\): its layer v1 "
                                        r"\(.*v1.msf\) is damaged: file truncated"):
                h.get(key)
        # A lower layer damaged before the version is opened: retry later, naming the layer.
        os.truncate(base[0], 100)
        m = self.attach("v2", top=top, lower=[base[:2]])
        with self.assertRaisesRegex(model.Unavailable, r"its layer below it \(.*v1.msf\) is "
                                    r"damaged: file truncated"):
            m.acquire()


if __name__ == "__main__":
    unittest.main()
