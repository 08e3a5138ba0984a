"""The .msf files of one version, read with pread(2): one full file, or a delta's chain.

A version is one FULL .msf, or a DELTA on a base: its upserted keys, TOMBSTONES for its deleted
keys, and its base's version name and header checksum. Such a version is a CHAIN of layers,
newest first: the delta itself, the deltas below it, the full base last (sidecar/msf/chain.h).
A lookup reads the newest layer first and stops at the first value or tombstone, like the C++
client's msf::ChainFind. A layer that does not hold the key costs the probe of its index (one
pread of a slot, usually empty or with another fingerprint): the fingerprints act as the
per-layer filter, so no Bloom filter is kept.

Why pread and not mmap: a file truncated under a mapping raises SIGBUS at the next read of a
page past its new end (an unreadable page does too), and CPython cannot survive that: its signal
handlers run later, between bytecodes, so the faulting load would fault again forever, and the
default kills the app. The C++ client survives it with a handler that maps zero pages over the
damage (common/mapping_guard.h); pure Python cannot install one. pread on a
truncated file returns fewer bytes instead, and an unreadable page EIO: both are reported as
Damaged, never as data, and the layer stays damaged (acquire again: the agent falls back to an
intact version). A value is a copy, which, unlike a view of a mapping, stays intact whatever
happens to the file later. The costs: a system call per probe run (up to 8 slots) and per entry
read, and the copy (bench/agent/python_client_bench.py); through a chain, one more probe run per
layer above the one that answers. The page cache is still the one the agent filled.

The agent verified every layer in full before it named it in the record, so this module checks
only what it needs to read safely and to know it reads the files the agent verified: each
layer's header_checksum against the record's, the sizes, the header flags, and the chain's links
(the checks of msf::ValidateChain). The byte layout transcribes sidecar/msf/format.h.
"""

import os
import stat
import struct
import weakref

from .errors import Corruption, Damaged, Unavailable
from .xxh3 import xxh3_64

# sidecar/msf/format.h
MAGIC = b"\x89MSF\r\n\x1a\n"
HEADER_SIZE = 4096
SECTION_DATA, SECTION_INDEX = 1, 2
FLAG_DELTA = 1
TOMBSTONE_LENGTH = 0xFFFFFFFF
MAX_CHAIN_DELTAS = 7
MAX_CHAIN_LAYERS = MAX_CHAIN_DELTAS + 1
OFF_FILE_SIZE, OFF_FLAGS, OFF_MODEL, OFF_VERSION, OFF_SECTIONS = 16, 52, 64, 128, 192
OFF_BASE_VERSION, OFF_BASE_CHECKSUM, OFF_CHAIN_DEPTH, OFF_TOMBSTONE_COUNT = 448, 512, 520, 528
OFF_HEADER_CHECKSUM = 4088
NAME_FIELD = 64
_FP_SHIFT = 48
_OFFSET_MASK = (1 << _FP_SHIFT) - 1
_SLOTS_PER_READ = 8

TOMBSTONE = object()  # Layer.probe's answer for a key the layer deletes


def identity(checksum):
    """A file's identity as manifests and messages write it."""
    return "xxh3:%016x" % checksum


def _name(hdr, off):
    return bytes(hdr[off:off + NAME_FIELD]).split(b"\0", 1)[0].decode("utf-8", "replace")


class Layer:
    """One .msf file read through a descriptor it keeps open (closed with it).

    path: the file; checksum: the header_checksum the control block's record names for it;
    size: the record's byte count (the top layer), or None (a lower layer: the size its header
    states); owner: (version, generation) of the version it belongs to, for messages.
    """

    _ENTRY_READ = 512  # bytes read with an entry's header beyond its key: most values fit

    def __init__(self, path, checksum, size, owner):
        # O_NONBLOCK: a FIFO put where the record's path points must not block the app in open()
        # (the C++ Env opens the same way); no effect on the regular file checked below.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        self._close = weakref.finalize(self, os.close, fd)
        self._fd, self.path, self._owner, self._top = fd, path, owner, size is not None
        self.version = None  # known once the header is read
        self.damaged = None  # the reason, once a read came back short or failed
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Corruption("%s: not a regular file" % path)
            if size is not None and st.st_size != size:
                raise Corruption("%s: is not the file the agent verified (size)" % path)
            hdr = self._read(0, HEADER_SIZE)
        except Damaged as e:
            raise Unavailable(str(e)) from None
        self._parse_header(hdr, checksum, st.st_size)

    def _parse_header(self, hdr, checksum, real_size):
        path = self.path
        if hdr[0:8] != MAGIC:
            raise Corruption("%s: not an .msf file" % path)
        file_size, _, entries, seed, nsec, flags = struct.unpack_from("<QqQQII", hdr,
                                                                       OFF_FILE_SIZE)
        self.checksum = struct.unpack_from("<Q", hdr, OFF_HEADER_CHECKSUM)[0]
        if self.checksum != checksum or file_size != real_size:
            raise Corruption("%s: is not the file the agent verified (the record names %s, the "
                             "file is %s)" % (path, identity(checksum), identity(self.checksum)))
        if flags & ~FLAG_DELTA:
            raise Corruption("%s: unknown header flags 0x%x" % (path, flags))
        self.model, self.version = _name(hdr, OFF_MODEL), _name(hdr, OFF_VERSION)
        self.delta = bool(flags & FLAG_DELTA)
        self.base_version, self.base_checksum, self.chain_depth, self.tombstones = "", 0, 0, 0
        if self.delta:
            self.base_version = _name(hdr, OFF_BASE_VERSION)
            self.base_checksum, self.chain_depth = struct.unpack_from("<QI", hdr,
                                                                      OFF_BASE_CHECKSUM)
            self.tombstones = struct.unpack_from("<Q", hdr, OFF_TOMBSTONE_COUNT)[0]
        data = index = None
        for i in range(min(nsec, 8)):
            kind, _, off, length, _ = struct.unpack_from("<IIQQQ", hdr, OFF_SECTIONS + 32 * i)
            if kind == SECTION_DATA:
                data = (off, length)
            elif kind == SECTION_INDEX:
                index = (off, length)
        if data is None or index is None or index[1] < 8:
            raise Corruption("%s: missing data or index section" % path)
        self.entries, self.seed = entries, seed
        self._data_off, self._data_len = data
        self._index_off = index[0]
        self._mask = index[1] // 8 - 1

    def describe(self):
        return "%s %s (%s)" % (self.version, identity(self.checksum), self.path)

    def _read(self, off, n):
        if self.damaged is None:
            try:
                b = os.pread(self._fd, n, off)
                if len(b) == n:
                    return b
                why = "file truncated (%d bytes at %d, read %d)" % (n, off, len(b))
            except OSError as e:
                why = "read failed: %s" % e
            version, generation = self._owner
            if self._top:
                self.damaged = "%s (generation %d, %s) is damaged: %s; acquire a new handle" % (
                    version, generation, self.path, why)
            else:
                self.damaged = ("%s (generation %d): its layer %s (%s) is damaged: %s; acquire a "
                                "new handle" % (version, generation, self.version or "below it",
                                                self.path, why))
        raise Damaged(self.damaged)

    def probe(self, key, h):
        """This layer's answer for `key`, whose hash with this layer's seed is h: the value (a
        memoryview of a copy), TOMBSTONE, or None when the layer does not hold the key."""
        fp = (h >> _FP_SHIFT) or 1
        i = h & self._mask
        base, size = self._data_off, self._data_len
        probed = 0
        while probed <= self._mask:
            # Up to a cache line of slots per pread (not past the index's end: the probe wraps
            # to slot 0): a probe run, a miss's most of all, then costs one system call.
            n = min(_SLOTS_PER_READ, self._mask + 1 - i)
            slots = struct.unpack("<%dQ" % n, self._read(self._index_off + 8 * i, 8 * n))
            for slot in slots:
                if slot == 0:
                    return None
                if (slot >> _FP_SHIFT) == fp:
                    got = self._entry(key, base, size, slot & _OFFSET_MASK)
                    if got is not None:
                        return got
            probed += n
            i = (i + n) & self._mask
        return None

    def _entry(self, key, base, size, off):
        """The value or TOMBSTONE of the entry at `off` of DATA if it holds `key`, else None."""
        if off + 8 > size:
            return None
        chunk = self._read(base + off, min(8 + len(key) + self._ENTRY_READ, size - off))
        klen, vlen = struct.unpack_from("<II", chunk, 0)
        # chunk stops at the end of DATA: a key that matches is whole.
        if klen != len(key) or chunk[8:8 + klen] != key:
            return None
        if vlen == TOMBSTONE_LENGTH:
            return TOMBSTONE
        if off + 8 + klen + vlen > size:
            return None
        rest = 8 + klen + vlen - len(chunk)
        if rest > 0:
            chunk += self._read(base + off + len(chunk), rest)
        return memoryview(chunk)[8 + klen:8 + klen + vlen]


def validate_chain(layers):
    """msf::ValidateChain (sidecar/msf/chain.h) for opened layers, newest first: 1..8 layers;
    the last is a full version; every other one a delta whose base_version/base_checksum are the
    next layer's version/header checksum and whose chain_depth counts the deltas from the base
    up to it; one model throughout. Raises Corruption naming the layer and the mismatch."""
    n = len(layers)
    if not 1 <= n <= MAX_CHAIN_LAYERS:
        raise Corruption("msf: a chain of %d layers (1..%d)" % (n, MAX_CHAIN_LAYERS))
    bottom = layers[-1]
    if bottom.delta:
        raise Corruption(
            "msf: %s is a delta on %s %s, but %s" % (
                bottom.describe(), bottom.base_version, identity(bottom.base_checksum),
                "the record names no layer below it (a delta is read only as part of its chain)"
                if n == 1 else "it is the bottom layer of the chain, which must be a full version"))
    for i, (upper, lower) in enumerate(zip(layers, layers[1:])):
        if not upper.delta:
            raise Corruption("msf: layer %d of the chain, %s, is a full version above layer %s"
                             % (i, upper.describe(), lower.describe()))
        if upper.base_version != lower.version or upper.base_checksum != lower.checksum:
            raise Corruption("msf: delta %s names base %s checksum %s, but the layer below is %s"
                             % (upper.version, upper.base_version,
                                identity(upper.base_checksum), lower.describe()))
    for i, layer in enumerate(layers):
        if layer.delta and layer.chain_depth != n - 1 - i:
            raise Corruption("msf: delta %s has chain_depth %d, but the chain holds %d delta(s) "
                             "from the full base %s up to it" % (layer.describe(),
                                                                 layer.chain_depth, n - 1 - i,
                                                                 bottom.version))
        if layer.model != layers[0].model:
            raise Corruption("msf: layer %s is of model %s, the chain's top layer of model %s"
                             % (layer.describe(), layer.model, layers[0].model))


def chain_find(layers, key, seed):
    """The value of key in a validated chain (newest first), or None: the first layer holding
    a value or a tombstone answers. seed: the hash seed all layers share, or None if they differ
    (the builder's default seed is shared, so the key is usually hashed once)."""
    h = xxh3_64(key, seed) if seed is not None else None
    for layer in layers:
        got = layer.probe(key, h if h is not None else xxh3_64(key, layer.seed))
        if got is not None:
            return None if got is TOMBSTONE else got
    return None
