"""Reading the active version of a model from Python: pure Python (mmap of the control block,
pread of the version files).

    from modelswap import Model
    with Model("ranker") as model:            # <shm-dir>/ranker.ctl
        with model.acquire() as h:            # pinned to one version, RCU style
            v = h.get(b"42")                  # memoryview of the value (a copy), or None

Same semantics as the C++ client (sidecar/client/model/client.h): everything read through one
handle comes from one version; a new acquire() returns the newest active version. The module
reads the version's files itself (msf.py), sharing the page cache the agent filled: for a delta
version, every layer of its chain, newest first (the record names them); with pread, not mmap,
so a file truncated under a handle raises Damaged instead of killing the app (msf.py says why).
It announces in its reader slot of the control block which generations it still reads,
refreshed with a heartbeat from a daemon thread. The bytes it reads and writes are laid out in
control_block.h; LAYOUT below transcribes that table and tests/sidecar/client/model/
layout_test.py checks it against the C header.

Memory ordering: CPython gives no atomics, but an item of memoryview.cast("Q") is read and
written with one aligned 8-byte load or store, which x86-64 (and arm64) perform atomically; on
x86-64 (TSO) loads are not reordered with loads, which is what the seqlock read needs. Where the
protocol needs a full fence (announce a generation, then re-read the record), we take and drop a
threading.Lock, whose atomic read-modify-write is a full barrier on x86-64. On weaker hardware
a torn record read is still caught by the seqlock's second seq check in practice, but not
guaranteed: use the C ABI there.

A control block truncated under the process: a load from (or store to) a page past the new end
of the mapped file raises SIGBUS, which kills a Python process (the C++ client survives it with
common/mapping_guard.h). So acquire(), the heartbeat and close() first compare
the file's size (``os.lseek(fd, 0, SEEK_END)``) with the control block's size: acquire() raises Unavailable naming the file
and "truncated" (the agent recreates the file, and the heartbeat then re-attaches to it), the
heartbeat skips its stores, and handles already returned stay readable (they pread the version
files, not this one). The record is checked again after it is read, since a cut inside the first
page reads zeros without any fault. What remains: a truncation in the microseconds between a
check and the loads after it still kills the process; closing that window needs a SIGBUS handler
in C (the C ABI, modelswap.h) or reads that a seqlock cannot use (pread gives no 8-byte single-copy
atomicity). The cost is one lseek(2) per acquire(): its fast path took 0.40 µs before the check
and 0.67 µs with it (CPython 3, x86-64).

Thread safety: a Model may be used from several threads (a lock guards its state); a Handle is
immutable.
"""

import errno
import fcntl
import mmap
import os
import random
import struct
import threading
import time
import sys
import weakref

from . import msf
from .errors import Corruption, Damaged, ModelswapError, Unavailable

__all__ = ["Model", "Handle", "ModelswapError", "Unavailable", "Corruption", "Damaged", "LAYOUT"]

# control_block.h, transcribed (byte offsets).
LAYOUT = {
    "magic": 0, "layout_version": 8, "slots_offset": 12, "file_bytes": 16, "slot_count": 24,
    "slot_bytes": 28, "created_unix_ns": 32, "agent_incarnation": 64, "agent_heartbeat_ns": 72,
    "heartbeat_interval_ns": 80, "reader_timeout_ns": 88, "model": 128, "record": 256,
    "record.seq": 256, "record.generation": 264, "record.bytes": 272, "record.checksum": 280,
    "record.state_word": 288, "record.published_unix_ns": 296, "record.version": 304,
    "record.path": 368, "record.layer_count": 1392, "record.chain_len": 1400,
    "record.layer_checksums": 1408, "record.chain_words": 1472, "record.size": 3264,
    "slot.owner": 0, "slot.heartbeat_ns": 8,
    "slot.min_generation": 16, "slot.max_generation": 24, "slot.pid": 32,
}
MAGIC = struct.unpack("<Q", b"MSWPCTRL")[0]
LAYOUT_VERSION = 1
SLOTS_OFFSET = 4096
SLOT_COUNT = 256
SLOT_BYTES = 64
FILE_BYTES = SLOTS_OFFSET + SLOT_COUNT * SLOT_BYTES
STATE_NONE, STATE_ACTIVE, STATE_FAILED = 0, 1, 2
MAX_LAYERS = 8  # MS_CTL_MAX_LAYERS, the .msf format's kMaxChainLayers
CHAIN_BYTES = 2048  # MS_CTL_CHAIN_BYTES

_W = lambda off: off // 8  # word index of a byte offset  # noqa: E731
_LAYER_COUNT, _CHAIN_LEN = _W(LAYOUT["record.layer_count"]), _W(LAYOUT["record.chain_len"])
_LAYER_CHECKSUMS, _CHAIN_WORDS = (_W(LAYOUT["record.layer_checksums"]),
                                  _W(LAYOUT["record.chain_words"]))


def _shm_dir(configured):
    return configured or os.environ.get("MODELSWAP_SHM_DIR") or "/dev/shm/modelswap"


def _lock_byte(fd, offset):
    """OFD write lock on one byte (like the C++ client), else a POSIX lock."""
    if hasattr(fcntl, "F_OFD_SETLK"):
        flock = struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
            return True
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                return False
            raise
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        return True
    except OSError:
        return False


def _words_to_str(words, first, count):
    raw = b"".join(struct.pack("<Q", words[first + i]) for i in range(count))
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _words_to_bytes(words, first, nbytes):
    """The first nbytes of the atomic words from `first` on, read word by word."""
    raw = b"".join(struct.pack("<Q", words[first + i]) for i in range((nbytes + 7) // 8))
    return raw[:nbytes]


def _parse_chain(layer_count, chain_len, chain, checksums):
    """The lower layers a consistent record copy names, newest first, as (path, checksum);
    checked like the C++ client's (control_block_access.cc, ParseChain)."""
    if layer_count <= 1:
        return ()  # one full version (0: written by an agent that predates chains)
    if layer_count > MAX_LAYERS:
        raise Corruption("control block: layer_count %d is above %d" % (layer_count, MAX_LAYERS))
    if chain_len > CHAIN_BYTES:
        raise Corruption("control block: chain_len %d past its field" % chain_len)
    paths = chain.split(b"\n")
    if paths[-1] != b"" or len(paths) - 1 != layer_count - 1 or b"" in paths[:-1]:
        raise Corruption("control block: chain paths do not match layer_count %d" % layer_count)
    return tuple((p.decode("utf-8", "replace"), checksums[i]) for i, p in enumerate(paths[:-1]))


class _Version:
    """One version: its layers (msf.Layer), newest first. One full file, or a delta version's
    chain: the record's `path` (the version itself) and the lower layers the record names, each
    with the header checksum the agent verified. A damaged layer damages the whole version:
    every later lookup raises Damaged, like the single file before chains."""

    def __init__(self, path, generation, version, checksum, size, lower=()):
        self.path, self.generation, self.version = path, generation, version
        self.lower = tuple(lower)
        owner = (version, generation)
        layers = [msf.Layer(path, checksum, size, owner)]
        layers += [msf.Layer(p, c, None, owner) for p, c in self.lower]
        msf.validate_chain(layers)
        self._layers = tuple(layers)
        self.entries = layers[0].entries  # the top layer's, like the C++ entry_count()
        seeds = set(layer.seed for layer in layers)
        self._seed = seeds.pop() if len(seeds) == 1 else None
        self.damaged = None  # the reason, once a read of any layer came back short or failed

    @property
    def layer_count(self):
        return len(self._layers)

    @property
    def layers(self):
        return [(layer.version, layer.path) for layer in self._layers]

    def find(self, key):
        if self.damaged is not None:
            raise Damaged(self.damaged)
        try:
            return msf.chain_find(self._layers, key, self._seed)
        except Damaged as e:
            self.damaged = str(e)
            raise


class Handle:
    """A view of one version. get() returns a memoryview of a copy of the value, or None; it
    raises Damaged once the version's file was damaged under the handle (acquire again)."""

    __slots__ = ("_v", "__weakref__")

    def __init__(self, version):
        self._v = version

    @property
    def version(self):
        return self._v.version

    @property
    def generation(self):
        return self._v.generation

    @property
    def path(self):
        return self._v.path

    @property
    def entry_count(self):
        """Entries of the version's own file: for a delta, its upserts and tombstones (the
        layers below are not counted, like the C++ client's entry_count())."""
        return self._v.entries

    @property
    def layer_count(self):
        """1 for a full version; for a delta, its chain's layers (itself down to the base)."""
        return self._v.layer_count

    @property
    def layers(self):
        """(version, path) of each layer, newest first."""
        return self._v.layers

    def get(self, key):
        if isinstance(key, str):
            key = key.encode()
        return self._v.find(bytes(key))

    def release(self):
        self._v = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Model:
    """Attaches to <shm_dir>/<name>.ctl and claims a reader slot.

    Raises Unavailable if the control block does not exist yet (the agent has not started).
    """

    def __init__(self, name, shm_dir=None, heartbeat_thread=True):
        self.name = name
        self._path = os.path.join(_shm_dir(shm_dir), name + ".ctl")
        self._lock = threading.RLock()
        self._fence_lock = threading.Lock()
        self._stop = threading.Event()
        self._current = None
        self._retired = []  # weakrefs to superseded versions some handle may still use
        self._seen_seq = 1
        self._min = self._max = 0
        self._fd = -1
        self.reattaches = 0
        self._attach()
        self._thread = None
        if heartbeat_thread:
            self._thread = threading.Thread(target=self._heartbeat_loop, daemon=True,
                                            name="modelswap-heartbeat-" + name)
            self._thread.start()

    # --- attach / slot -----------------------------------------------------------------------

    def _attach(self):
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Unavailable("control block %s does not exist (is the modelswap agent running?)"
                              % self._path) from None
        try:
            st = os.fstat(fd)
            if st.st_size != FILE_BYTES:
                raise Corruption("control block %s: size %d, expected %d"
                                 % (self._path, st.st_size, FILE_BYTES))
            mm = mmap.mmap(fd, FILE_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            words = memoryview(mm).cast("Q")
            hdr = struct.unpack_from("<QIIQII", mm, 0)
            if hdr[0] != MAGIC:
                raise Corruption("control block %s: bad magic" % self._path)
            if hdr[1] != LAYOUT_VERSION:
                raise ModelswapError("control block %s: layout version %d" % (self._path, hdr[1]))
            if hdr[2:] != (SLOTS_OFFSET, FILE_BYTES, SLOT_COUNT, SLOT_BYTES):
                raise Corruption("control block %s: unexpected geometry" % self._path)
            if _words_to_str(words, _W(LAYOUT["model"]), 8) != self.name:
                raise Corruption("control block %s names another model" % self._path)
            slot = self._claim(fd, words)
        except BaseException:
            os.close(fd)
            raise
        old_fd, old_words, old_slot = self._fd, getattr(self, "_words", None), getattr(
            self, "_slot", None)
        self._fd, self._ino, self._mm, self._words, self._slot = fd, st.st_ino, mm, words, slot
        self._min = self._max = 0
        self._seen_seq = 1
        if old_fd >= 0:
            if os.fstat(old_fd).st_size >= FILE_BYTES:  # a truncated old file's slot may be gone
                self._clear_slot(old_words, old_slot)
            os.close(old_fd)  # drops the old slot's lock
        self._announce()

    def _claim(self, fd, words):
        for i in range(SLOT_COUNT):
            off = SLOTS_OFFSET + i * SLOT_BYTES
            if not _lock_byte(fd, off):
                continue
            w = _W(off)
            words[w + 3] = 0  # max_generation
            words[w + 2] = 0  # min_generation
            words[w + 1] = time.monotonic_ns()
            words[w + 4] = os.getpid()
            words[w] = random.getrandbits(63) | 1  # owner, last: publishes the reset words
            return w
        raise Unavailable("control block %s: all %d reader slots are in use"
                          % (self._path, SLOT_COUNT))

    @staticmethod
    def _clear_slot(words, w):
        words[w + 2] = 0
        words[w + 3] = 0
        words[w] = 0

    def _truncated(self):
        """None while the control block is whole, else the error message (module docstring)."""
        if self._fd < 0:
            return None  # closed: nothing is mapped through a descriptor any more
        # lseek(SEEK_END) is fstat's st_size without building a stat_result: a quarter of the
        # cost. The descriptor's offset is used by nothing else (slot locks are SEEK_SET).
        size = os.lseek(self._fd, 0, os.SEEK_END)
        if size >= FILE_BYTES:
            return None
        return ("control block %s was truncated to %d bytes under this process (the agent "
                "recreates it; handles already acquired stay readable)" % (self._path, size))

    def _check_intact(self):
        msg = self._truncated()
        if msg is not None:
            raise Unavailable(msg)

    def _fence(self):
        # A locked read-modify-write: a full barrier on x86-64 (see the module docstring).
        self._fence_lock.acquire()
        self._fence_lock.release()

    def _held(self):
        vs = [r() for r in self._retired]
        self._retired = [weakref.ref(v) for v in vs if v is not None]
        vs = [v for v in vs if v is not None]
        if self._current is not None:
            vs.append(self._current)
        return vs

    def _announce(self, extra=None):
        gens = [v.generation for v in self._held()]
        if extra is not None:
            gens.append(extra)
        lo, hi = (min(gens), max(gens)) if gens else (0, 0)
        w = self._slot
        if hi == 0:  # hold nothing: widen to [0, max] first, then clear
            self._words[w + 2] = 0
            self._words[w + 3] = 0
        else:
            if hi > self._max:
                self._words[w + 3] = hi
            if lo != self._min:
                self._words[w + 2] = lo
            if hi < self._max:
                self._words[w + 3] = hi
        self._min, self._max = (lo, hi) if hi else (0, 0)
        self._fence()

    # --- record ------------------------------------------------------------------------------

    def _read_record(self, tries=10000):
        words, r = self._words, _W(LAYOUT["record"])
        for _ in range(tries):
            s1 = words[r]
            if s1 & 1:
                continue
            gen, size, checksum, state_word = words[r + 1], words[r + 2], words[r + 3], words[r + 4]
            version = _words_to_str(words, r + 6, 8)
            path = _words_to_str(words, r + 14, 128)
            layer_count, chain_len = words[_LAYER_COUNT], words[_CHAIN_LEN]
            checksums, chain = (), b""
            if layer_count > 1:  # a full version's copy reads no chain words
                checksums = tuple(words[_LAYER_CHECKSUMS + k] for k in range(MAX_LAYERS))
                chain = _words_to_bytes(words, _CHAIN_WORDS, min(chain_len, CHAIN_BYTES))
            if words[r] == s1:
                # Consistent: a malformed chain now is the agent's (or a stray writer's) doing.
                lower = _parse_chain(layer_count, chain_len, chain, checksums)
                return s1, gen, size, checksum, state_word & 0xFFFFFFFF, version, path, lower
        raise Unavailable("model %s: control block record kept changing" % self.name)

    def acquire(self):
        """A Handle on the newest active version."""
        with self._lock:
            if self._thread is None:
                self._heartbeat_locked()
            if self._fd >= 0 and os.lseek(self._fd, 0, os.SEEK_END) < FILE_BYTES:  # _truncated,
                self._check_intact()  # inlined: this is the fast path
            if (self._current is not None and self._current.damaged is None
                    and self._words[_W(256)] == self._seen_seq):
                return Handle(self._current)
            return self._acquire_slow()

    def _acquire_slow(self):
        for _ in range(8):
            seq, gen, size, checksum, state, version, path, lower = self._read_record()
            self._check_intact()  # zeros from a cut inside the record's page are no record
            if state == STATE_NONE:
                raise Unavailable("model %s: no active version yet" % self.name)
            if state != STATE_ACTIVE:
                raise Unavailable("model %s: the agent dropped version %s (see its /v1/status)"
                                  % (self.name, version))
            cur = self._current
            if (cur is not None and cur.generation == gen and cur.path == path
                    and cur.lower == lower):
                if cur.damaged is not None:  # before the agent noticed: it will fall back
                    raise Unavailable(cur.damaged)
                self._seen_seq = seq
                return Handle(cur)
            self._announce(extra=gen)  # before mapping; then check the record did not move on
            if self._words[_W(256)] != seq:
                continue
            try:
                v = _Version(path, gen, version, checksum, size, lower)
            except FileNotFoundError:
                if self._words[_W(256)] != seq:
                    continue
                raise
            if cur is not None:
                self._retired.append(weakref.ref(cur))
            self._current = v
            self._seen_seq = seq
            self._announce()
            return Handle(v)
        raise Unavailable("model %s: the active version kept changing" % self.name)

    # --- heartbeat ---------------------------------------------------------------------------

    def heartbeat(self):
        """Refreshes the slot now (the daemon thread does this on its own)."""
        with self._lock:
            self._heartbeat_locked()

    def _heartbeat_locked(self):
        try:
            st = os.stat(self._path)
            if st.st_ino != self._ino:
                self._attach()
                self.reattaches += 1
        except (OSError, ModelswapError):
            pass  # keep the old attachment; try again next beat
        if self._truncated() is not None:
            return False  # its pages may be gone: no store until the agent recreates it
        cur = self._current
        # Drop a superseded version no handle uses, so an idle process does not pin it. The
        # references: self._current, the local `cur`, and getrefcount's argument.
        if cur is not None and self._words[_W(256)] != self._seen_seq:
            del cur
            if sys.getrefcount(self._current) <= 2:
                self._current = None
        self._announce()
        self._words[self._slot + 1] = time.monotonic_ns()
        return True

    def _heartbeat_loop(self):
        while not self._stop.is_set():
            with self._lock:
                if self._fd < 0:
                    return
                interval = 200_000_000  # a truncated file: look again for the new one in 0.1 s
                if self._heartbeat_locked():
                    interval = self._words[_W(LAYOUT["heartbeat_interval_ns"])]
            self._stop.wait(min(max(interval / 2e9, 0.001), 5.0))

    @property
    def slot(self):
        return (self._slot * 8 - SLOTS_OFFSET) // SLOT_BYTES

    def close(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._fd >= 0:
                if self._truncated() is None:
                    self._clear_slot(self._words, self._slot)
                os.close(self._fd)
                self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
