"""Reading the active version of a model from Python: pure Python (mmap of the control block,
pread of the version files).

    from modelswap import Model
    with Model("ranker") as model:            # <shm-dir>/ranker.ctl
        with model.acquire() as h:            # pinned to one version, RCU style
            v = h.get(b"42")                  # memoryview of the value (a copy), or None

Same semantics as the C++ client (sidecar/client/model/client.h): everything read through one handle
comes from one version; a new acquire() returns the newest active version; the module reads the
version file itself (sharing the page cache the agent filled; _Version says why it does not map
it: a file truncated under a handle raises Damaged instead of killing the app) and announces in
its reader slot of the control block which generations it still reads, refreshed with a
heartbeat from a daemon thread. The bytes it reads and writes are laid out in control_block.h;
LAYOUT below transcribes that table and tests/sidecar/client/model/layout_test.py checks it
against the C header.

Memory ordering: CPython gives no atomics, but an item of memoryview.cast("Q") is read and
written with one aligned 8-byte load or store, which x86-64 (and arm64) perform atomically; on
x86-64 (TSO) loads are not reordered with loads, which is what the seqlock read needs. Where the
protocol needs a full fence (announce a generation, then re-read the record), we take and drop a
threading.Lock, whose atomic read-modify-write is a full barrier on x86-64. On weaker hardware
a torn record read is still caught by the seqlock's second seq check in practice, but not
guaranteed: use the C ABI there.

Thread safety: a Model may be used from several threads (a lock guards its state); a Handle is
immutable.
"""

import errno
import fcntl
import mmap
import os
import random
import stat
import struct
import threading
import time
import sys
import weakref

from .xxh3 import xxh3_64

__all__ = ["Model", "Handle", "ModelswapError", "Unavailable", "Corruption", "Damaged", "LAYOUT"]

# control_block.h, transcribed (byte offsets).
LAYOUT = {
    "magic": 0, "layout_version": 8, "slots_offset": 12, "file_bytes": 16, "slot_count": 24,
    "slot_bytes": 28, "created_unix_ns": 32, "agent_incarnation": 64, "agent_heartbeat_ns": 72,
    "heartbeat_interval_ns": 80, "reader_timeout_ns": 88, "model": 128, "record": 256,
    "record.seq": 256, "record.generation": 264, "record.bytes": 272, "record.checksum": 280,
    "record.state_word": 288, "record.published_unix_ns": 296, "record.version": 304,
    "record.path": 368, "record.size": 1136, "slot.owner": 0, "slot.heartbeat_ns": 8,
    "slot.min_generation": 16, "slot.max_generation": 24, "slot.pid": 32,
}
MAGIC = struct.unpack("<Q", b"MSWPCTRL")[0]
LAYOUT_VERSION = 1
SLOTS_OFFSET = 4096
SLOT_COUNT = 256
SLOT_BYTES = 64
FILE_BYTES = SLOTS_OFFSET + SLOT_COUNT * SLOT_BYTES
STATE_NONE, STATE_ACTIVE, STATE_FAILED = 0, 1, 2

# sidecar/msf/format.h
_MSF_MAGIC = b"\x89MSF\r\n\x1a\n"
_SECTION_DATA, _SECTION_INDEX = 1, 2
_FP_SHIFT = 48
_OFFSET_MASK = (1 << _FP_SHIFT) - 1

_W = lambda off: off // 8  # word index of a byte offset  # noqa: E731


class ModelswapError(Exception):
    """Base error; .code names the modelswap::Code."""
    code = "Internal"


class Unavailable(ModelswapError):
    """No agent or no active version yet: retry later."""
    code = "Unavailable"


class Corruption(ModelswapError):
    """A control block or model file fails a check."""
    code = "Corruption"


class Damaged(ModelswapError):
    """The handle's version file was damaged under it (truncated, unreadable): acquire again."""
    code = "Aborted"


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


class _Version:
    """One version, read with pread(2) through a descriptor it keeps open (closed with it).

    Not mmap: a file truncated under a mapping raises SIGBUS at the next read of a page past its
    new end (an unreadable page does too), and CPython cannot survive that: its signal handlers
    run later, between bytecodes, so the faulting load would fault again forever, and the default
    kills the app. The C++ client survives it with a handler that maps zero pages over the
    damage (sidecar/client/model/mapping_guard.h); pure Python cannot install one. pread on a
    truncated file returns fewer bytes instead, and an unreadable page EIO: both are reported as
    Damaged, never as data, and the version stays damaged (acquire again: the agent falls back to
    an intact version). A value is a copy, which, unlike a view of a mapping, stays intact whatever
    happens to the file later. The costs: a system call per slot probed and per entry read, and
    the copy (bench/agent/python_client_bench.py: a get on a held handle went from 9 to 15 us in
    a sandbox where system calls are slow; the pure-Python XXH3 is most of the rest). The page
    cache is still the one the agent filled.
    """

    _ENTRY_READ = 512  # bytes read with an entry's header beyond its key: most values fit

    def __init__(self, path, generation, version, checksum, size):
        # O_NONBLOCK: a FIFO put where the record's path points must not block the app in open()
        # (the C++ Env opens the same way); no effect on the regular file checked below.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        self._close = weakref.finalize(self, os.close, fd)
        self._fd, self.path, self.generation, self.version = fd, path, generation, version
        self.damaged = None  # the reason, once a read came back short or failed
        self._size = size
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Corruption("%s: not a regular file" % path)
            if st.st_size != size:
                raise Corruption("%s: is not the file the agent verified (size)" % path)
            hdr = self._read(0, 4096)
        except Damaged as e:
            raise Unavailable(str(e)) from None
        if hdr[0:8] != _MSF_MAGIC:
            raise Corruption("%s: not an .msf file" % path)
        file_size, _, entries, seed, nsec = struct.unpack_from("<QqQQI", hdr, 16)
        header_checksum = struct.unpack_from("<Q", hdr, 4088)[0]
        if header_checksum != checksum or file_size != size:
            raise Corruption("%s: is not the file the agent verified" % path)
        data = index = None
        for i in range(min(nsec, 8)):
            kind, _, off, length, _ = struct.unpack_from("<IIQQQ", hdr, 192 + 32 * i)
            if kind == _SECTION_DATA:
                data = (off, length)
            elif kind == _SECTION_INDEX:
                index = (off, length)
        if data is None or index is None or index[1] < 8:
            raise Corruption("%s: missing data or index section" % path)
        self.entries, self._seed = entries, seed
        self._data_off, self._data_len = data
        self._index_off = index[0]
        self._mask = index[1] // 8 - 1

    def _read(self, off, n):
        if self.damaged is None:
            try:
                b = os.pread(self._fd, n, off)
                if len(b) == n:
                    return b
                why = "file truncated (%d bytes at %d, read %d)" % (n, off, len(b))
            except OSError as e:
                why = "read failed: %s" % e
            self.damaged = "%s (generation %d, %s) is damaged: %s; acquire a new handle" % (
                self.version, self.generation, self.path, why)
        raise Damaged(self.damaged)

    def find(self, key):
        h = xxh3_64(key, self._seed)
        fp = (h >> _FP_SHIFT) or 1
        i = h & self._mask
        base, size = self._data_off, self._data_len
        for _ in range(self._mask + 1):
            slot = struct.unpack("<Q", self._read(self._index_off + 8 * i, 8))[0]
            if slot == 0:
                return None
            if (slot >> _FP_SHIFT) == fp:
                off = slot & _OFFSET_MASK
                if off + 8 <= size:
                    chunk = self._read(base + off, min(8 + len(key) + self._ENTRY_READ, size - off))
                    klen, vlen = struct.unpack_from("<II", chunk, 0)
                    if off + 8 + klen + vlen <= size and chunk[8:8 + klen] == key:
                        rest = 8 + klen + vlen - len(chunk)
                        if rest > 0:
                            chunk += self._read(base + off + len(chunk), rest)
                        return memoryview(chunk)[8 + klen:8 + klen + vlen]
            i = (i + 1) & self._mask
        return None


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
        return self._v.entries

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
            if words[r] == s1:
                return s1, gen, size, checksum, state_word & 0xFFFFFFFF, version, path
        raise Unavailable("model %s: control block record kept changing" % self.name)

    def acquire(self):
        """A Handle on the newest active version."""
        with self._lock:
            if self._thread is None:
                self._heartbeat_locked()
            if (self._current is not None and self._current.damaged is None
                    and self._words[_W(256)] == self._seen_seq):
                return Handle(self._current)
            return self._acquire_slow()

    def _acquire_slow(self):
        for _ in range(8):
            seq, gen, size, checksum, state, version, path = self._read_record()
            if state == STATE_NONE:
                raise Unavailable("model %s: no active version yet" % self.name)
            if state != STATE_ACTIVE:
                raise Unavailable("model %s: the agent dropped version %s (see its /v1/status)"
                                  % (self.name, version))
            cur = self._current
            if cur is not None and cur.generation == gen and cur.path == path:
                if cur.damaged is not None:  # before the agent noticed: it will fall back
                    raise Unavailable(cur.damaged)
                self._seen_seq = seq
                return Handle(cur)
            self._announce(extra=gen)  # before mapping; then check the record did not move on
            if self._words[_W(256)] != seq:
                continue
            try:
                v = _Version(path, gen, version, checksum, size)
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
        cur = self._current
        # Drop a superseded version no handle uses, so an idle process does not pin it. The
        # references: self._current, the local `cur`, and getrefcount's argument.
        if cur is not None and self._words[_W(256)] != self._seen_seq:
            del cur
            if sys.getrefcount(self._current) <= 2:
                self._current = None
        self._announce()
        self._words[self._slot + 1] = time.monotonic_ns()

    def _heartbeat_loop(self):
        while not self._stop.is_set():
            with self._lock:
                if self._fd < 0:
                    return
                self._heartbeat_locked()
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
                self._clear_slot(self._words, self._slot)
                os.close(self._fd)
                self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
