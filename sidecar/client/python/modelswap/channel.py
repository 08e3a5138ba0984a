"""Pure-Python end of modelswap shared-memory channels (``<shm-dir>/channels/<name>.chan``).

Same file layout and protocol as the C++ and C ends; the layout is defined once, in
sidecar/client/channel/channel_layout.h, and transcribed in channel_layout.py (with the size and
header checks; a test compares its constants with the C++ build), whose names this module
re-exports. One writer (ChannelWriter, holding an exclusive flock on the file), any
number of readers (ChannelReader, read-only mapping) in any of the three languages.

Threading: one object per thread. Errors: ChannelError, whose ``code`` is a modelswap Code name
("NotFound", "FailedPrecondition", "Corruption", "InvalidArgument", ...).

Why this is a correct seqlock without atomics or fences in Python
-----------------------------------------------------------------
A seqlock reader needs (1) each version word read in one piece and (2) the order
"version, payload, version" kept; the writer needs "odd version, payload, even version" kept.

(1) Versions are read and written with struct's *native* "Q" format on an mmap. CPython implements
it as ``memcpy(&x, ptr, 8)`` into a local (Modules/_struct.c, nu_ulonglong / np_ulonglong), which
compilers turn into one 8-byte load or store; the slot layout keeps these words 8-byte aligned,
and aligned 8-byte accesses are single-copy atomic on x86-64 and arm64. (The standard-size "<Q"
format is assembled byte by byte and could tear, so it is never used for atomic words.)

(2) Each step is a separate call into C through the interpreter, so the C compiler cannot move
one access past another. The hardware can, on arm64 (on x86-64, TSO keeps loads in order with
loads and stores with stores, which is all a seqlock needs). So between the steps this module
calls ``_barrier()``: release then re-acquire a private, uncontended threading.Lock. CPython
implements that with an atomic release operation followed by an atomic acquire operation (a
semaphore on 3.11, PyMutex on 3.13), and a release followed by an acquire in program order is a
full two-way barrier for the accesses around it (on arm64, STLR/CASL then LDAR/CASA are ordered,
earlier accesses cannot pass the release, later ones cannot pass the acquire). The cost is about
0.1 µs per barrier, small next to the interpreter's own cost per message.

A file truncated under the mapping
----------------------------------
A load from a page past the new end of a file raises SIGBUS, which kills a Python process (the
interpreter cannot resume a faulting load; the C++ end survives it with common/mapping_guard.h).
So every public call that touches the mapping first compares the file's size
(``os.lseek(fd, 0, SEEK_END)``) with the size mapped at open and raises ChannelDamaged (a ChannelError with code "Aborted", also a
modelswap.errors.Damaged) when the file is shorter: reopen the channel once its writer has
recreated it. The cost is one lseek(2) per call, about 0.2 µs in Python, next to the 2-3 µs the
interpreter spends per message. What remains: a truncation in the microseconds between that check and the loads of
the same call still kills the process. Closing that window needs a SIGBUS handler in C (the C ABI,
channel_c.h, has one) or pread, which the seqlock cannot use: it needs each version word read in
one 8-byte load, and a pread copy gives no such guarantee.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
import time
from typing import NamedTuple, Optional

# Re-exported: modelswap.channel is where callers and tests find the layout's names.
from .channel_layout import (  # noqa: F401
    CACHE_LINE, HEADER_BYTES, LAYOUT_VERSION, MAGIC, MAX_MESSAGE_BYTES, MAX_NAME_BYTES, MAX_SLOTS,
    OFF_CREATED_UNIX_NS, OFF_FILE_BYTES, OFF_HEADER_BYTES, OFF_LAYOUT_VERSION, OFF_MAGIC,
    OFF_MESSAGE_BYTES, OFF_PUBLISHED_SEQ, OFF_SLOT_COUNT, OFF_SLOT_HEADER_BYTES, OFF_SLOT_STRIDE,
    OFF_WRITER_EPOCH, SLOT_HEADER_BYTES, SLOT_OFF_LENGTH, SLOT_OFF_VERSION, _HEADER, _NAME_RE, _U32,
    _U64, ChannelError, _check_options, _validate_header, channel_path, default_shm_dir, file_bytes,
    slot_stride, validate_name)

__all__ = ["ChannelDamaged", "ChannelError", "ChannelReader", "ChannelWriter", "Message", "channel_path",
           "default_shm_dir", "validate_name"]

_READ_TRIES = 1024  # tries per read_next / read_latest call, in total (kChannelReadTries, channel.h)


try:
    from .errors import Damaged as _Damaged
except ImportError:  # pragma: no cover  (channel.py shipped without errors.py, see __init__.py)
    class _Damaged(Exception):
        pass


class ChannelDamaged(ChannelError, _Damaged):
    """The channel file is shorter than when it was mapped (truncated under this process): no
    call reads it any more; reopen the channel (module docstring)."""

    def __init__(self, path: str, size: int, mapped: int):
        super().__init__("Aborted", f"channel {path} was truncated to {size} bytes under this "
                                    f"process (mapped {mapped}): reopen it")

class Message(NamedTuple):
    seq: int  # sequence id
    missed: int  # messages skipped since the previous one this reader returned (exact)
    data: bytes

def _os_error(e: OSError, what: str) -> ChannelError:
    code = {errno.ENOENT: "NotFound", errno.EEXIST: "AlreadyExists", errno.EACCES:
            "PermissionDenied", errno.EPERM: "PermissionDenied"}.get(e.errno, "IOError")
    return ChannelError(code, f"{what}: {e.strerror}")


class _Barrier:
    """A full memory barrier from an uncontended lock: release, then acquire (module docstring)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()

    def __call__(self):
        self._lock.release()
        self._lock.acquire()


class _Mapped:
    """An open, mapped, checked channel file."""

    def __init__(self, path: str, writer: bool, want_slots: int, want_bytes: int):
        flags = (os.O_RDWR if writer else os.O_RDONLY) | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            self.fd = os.open(path, flags)
        except OSError as e:
            raise _os_error(e, f"open {path}") from None
        self.mm = None
        try:
            st = os.fstat(self.fd)
            if not (st.st_mode & 0o170000) == 0o100000:
                raise ChannelError("Corruption", f"{path}: not a regular file")
            if writer:
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ChannelError("FailedPrecondition",
                                       f"channel {path} already has a live writer (flock held)")
            if st.st_size < HEADER_BYTES:
                _validate_header(b"", st.st_size, 0, 0, path)
            access = mmap.ACCESS_WRITE if writer else mmap.ACCESS_READ
            self.mm = mmap.mmap(self.fd, st.st_size, mmap.MAP_SHARED, access=access)
            self.size = st.st_size
            self.slots, self.message_bytes = _validate_header(self.mm, st.st_size, want_slots,
                                                              want_bytes, path)
        except BaseException:
            self.close()
            raise
        self.path = path
        self.mask = self.slots - 1
        self.stride = slot_stride(self.message_bytes)

    def slot(self, seq: int) -> int:
        return HEADER_BYTES + (seq & self.mask) * self.stride

    def check(self) -> None:
        """Raises ChannelDamaged if the file is now shorter than the mapping (its pages past
        the end would SIGBUS: module docstring). Also a closed channel's calls end here."""
        if self.mm is None:
            raise ChannelError("FailedPrecondition", "channel is closed")
        # lseek(SEEK_END) is fstat's st_size without building a stat_result: a quarter of the
        # cost. The descriptor's offset is used by nothing else (the mapping, the flock).
        size = os.lseek(self.fd, 0, os.SEEK_END)
        if size < self.size:
            raise ChannelDamaged(self.path, size, self.size)

    def close(self):
        if self.mm is not None:
            self.mm.close()
            self.mm = None
        if self.fd >= 0:
            os.close(self.fd)  # drops a writer's flock
            self.fd = -1


def _create(shm_dir: str, name: str, path: str, slots: int, msg_bytes: int) -> None:
    """Builds a complete file unnamed and links it in place (see channel_open.cc); EEXIST if lost."""
    d = f"{shm_dir}/channels"
    temp = None
    try:
        fd = os.open(d, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o660)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise _os_error(e, f"create {d}") from None
        temp = f"{d}/.{name}.chan.tmp-{os.getpid()}"
        try:  # a leftover (or a planted symlink) must not be opened: remove, then create anew
            os.unlink(temp)
        except FileNotFoundError:
            pass
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o660)
    try:
        os.ftruncate(fd, file_bytes(slots, msg_bytes))
        header = _HEADER.pack(MAGIC, LAYOUT_VERSION, HEADER_BYTES, slots, msg_bytes,
                              slot_stride(msg_bytes), SLOT_HEADER_BYTES,
                              file_bytes(slots, msg_bytes), time.time_ns())
        os.pwrite(fd, header, 0)
        # Never replaces: EEXIST if another creator won. Passing a dir fd makes CPython call
        # linkat(AT_SYMLINK_FOLLOW) (plain link() would not follow the /proc/self/fd link).
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            src = temp if temp else f"/proc/self/fd/{fd}"
            os.link(src, path, src_dir_fd=dfd, follow_symlinks=True)
        finally:
            os.close(dfd)
    finally:
        os.close(fd)
        if temp:
            os.unlink(temp)


class _Closing:
    """close() (unmaps the file and closes it; a writer's flock goes with it) and the with
    statement, for both ends."""

    def close(self):
        self._m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ChannelWriter(_Closing):
    """The single writer. Creates the channel or attaches (same slot_count and message_bytes)."""

    def __init__(self, shm_dir: Optional[str], name: str, slot_count: int, message_bytes: int):
        validate_name(name)
        problem = _check_options(slot_count, message_bytes)
        if problem:
            raise ChannelError("InvalidArgument", problem)
        shm_dir = shm_dir or default_shm_dir()
        path = channel_path(shm_dir, name)
        os.makedirs(f"{shm_dir}/channels", mode=0o770, exist_ok=True)
        self._barrier = _Barrier()
        for _ in range(3):
            try:
                self._m = _Mapped(path, True, slot_count, message_bytes)
                break
            except ChannelError as e:
                if e.code != "NotFound":
                    raise
            try:
                _create(shm_dir, name, path, slot_count, message_bytes)
            except FileExistsError:
                pass  # lost the creation race: attach to the winner's file
            except OSError as e:
                raise _os_error(e, f"create {path}") from None
        else:
            raise ChannelError("Aborted", f"channel {path}: created and removed concurrently")
        self.abandoned_slots = 0
        self._next = self._recover()

    def _recover(self) -> int:
        """As ChannelWriter::Recover: continue above every id a reader may have seen."""
        m = self._m
        m.check()
        nxt = _U64.unpack_from(m.mm, OFF_PUBLISHED_SEQ)[0] + 1
        for i in range(m.slots):
            v = _U64.unpack_from(m.mm, HEADER_BYTES + i * m.stride)[0]
            if v & 1:
                self.abandoned_slots += 1
                nxt = max(nxt, (v + 1) // 2)  # reuse the abandoned id: the next publish repairs it
            elif v:
                nxt = max(nxt, v // 2 + 1)
        self._barrier()
        _U64.pack_into(m.mm, OFF_PUBLISHED_SEQ, nxt - 1)
        epoch = _U64.unpack_from(m.mm, OFF_WRITER_EPOCH)[0]
        _U64.pack_into(m.mm, OFF_WRITER_EPOCH, epoch + 1)
        return nxt

    @property
    def last_published(self) -> int:
        return self._next - 1

    @property
    def message_bytes(self) -> int:
        return self._m.message_bytes

    def publish(self, data: bytes) -> int:
        """Publishes data (at most message_bytes); returns its sequence id. Never waits."""
        m = self._m
        data = memoryview(data).cast("B")  # bytes, whatever the item size of a memoryview
        if len(data) > m.message_bytes:
            raise ChannelError("InvalidArgument",
                               f"message of {len(data)} bytes exceeds {m.message_bytes}")
        m.check()
        seq = self._next
        off = m.slot(seq)
        if _U64.unpack_from(m.mm, off)[0] >= 2 * seq:
            # An earlier call was interrupted (KeyboardInterrupt, a signal handler's exception)
            # after its even version store: seq is complete. Rewriting it under the same even
            # version could hand a reader a mix of both, so finish that publish and move on.
            self._barrier()
            if _U64.unpack_from(m.mm, OFF_PUBLISHED_SEQ)[0] < seq:
                _U64.pack_into(m.mm, OFF_PUBLISHED_SEQ, seq)
            self._next = seq = seq + 1
            off = m.slot(seq)
        _U64.pack_into(m.mm, off, 2 * seq - 1)  # odd: write in progress
        self._barrier()  # the odd version before any payload byte
        _U32.pack_into(m.mm, off + SLOT_OFF_LENGTH, len(data))
        m.mm[off + SLOT_HEADER_BYTES:off + SLOT_HEADER_BYTES + len(data)] = data
        self._barrier()  # every payload byte before the even version
        _U64.pack_into(m.mm, off, 2 * seq)
        self._barrier()  # the slot before published_seq, which vouches for it
        _U64.pack_into(m.mm, OFF_PUBLISHED_SEQ, seq)
        self._next = seq + 1
        return seq


class ChannelReader(_Closing):
    """A read-only reader with its own cursor; start is "next" (new messages) or "oldest"."""

    def __init__(self, shm_dir: Optional[str], name: str, expected_message_bytes: int = 0,
                 start: str = "next"):
        validate_name(name)
        if start not in ("next", "oldest"):
            raise ChannelError("InvalidArgument", f'start must be "next" or "oldest", not {start}')
        self._m = _Mapped(channel_path(shm_dir or default_shm_dir(), name), False, 0,
                          expected_message_bytes)
        self._barrier = _Barrier()
        p = self.published_seq()
        self.next_seq = p + 1
        if start == "oldest":
            self.next_seq = p - self._m.mask if p > self._m.mask else 1
        self._pending_missed = 0
        self.total_missed = 0
        self.torn_retries = 0
        # Calls that gave up because the writer overwrote the message during every try (C++:
        # kBusy). They return None, like "nothing new": call again.
        self.busy_returns = 0

    @property
    def message_bytes(self) -> int:
        return self._m.message_bytes

    @property
    def slot_count(self) -> int:
        return self._m.slots

    def published_seq(self) -> int:
        self._m.check()
        return self._published()

    def _published(self) -> int:
        # Unchecked: for calls that already ran self._m.check().
        return _U64.unpack_from(self._m.mm, OFF_PUBLISHED_SEQ)[0]

    def writer_epoch(self) -> int:
        self._m.check()
        return _U64.unpack_from(self._m.mm, OFF_WRITER_EPOCH)[0]

    def _copy(self, seq: int, v1: int) -> Optional[bytes]:
        """The payload of message seq if the slot still holds it after the copy, else None."""
        m = self._m
        off = m.slot(seq)
        self._barrier()  # v1 before the payload
        length = min(_U32.unpack_from(m.mm, off + SLOT_OFF_LENGTH)[0], m.message_bytes)
        data = m.mm[off + SLOT_HEADER_BYTES:off + SLOT_HEADER_BYTES + length]
        self._barrier()  # the payload before v2
        if _U64.unpack_from(m.mm, off)[0] != v1:
            self.torn_retries += 1
            return None
        return data

    def read_next(self) -> Optional[Message]:
        """The message at the cursor (skipping and counting overwritten ones), or None."""
        m = self._m
        m.check()
        # Bounded in total (channel.h, kChannelReadTries): a writer lapping the cursor during
        # every copy cannot keep this call going.
        for _ in range(_READ_TRIES):
            want = self.next_seq
            v1 = _U64.unpack_from(m.mm, m.slot(want))[0]
            if v1 < 2 * want:
                return None  # not written yet, or being written
            if v1 == 2 * want:
                data = self._copy(want, v1)
                if data is None:
                    continue
                missed, self._pending_missed = self._pending_missed, 0
                self.total_missed += missed
                self.next_seq = want + 1
                return Message(want, missed, data)
            # Lapped: ids <= max(slot's id, published_seq) - N are gone (see channel.cc).
            t = (v1 + 1) // 2
            self._barrier()
            first_alive = max(t, self._published()) - m.mask
            if first_alive <= want:
                return None  # a damaged version word (see channel.cc): never move backwards
            self._pending_missed += first_alive - want
            self.next_seq = first_alive
        self.busy_returns += 1
        return None

    def read_latest(self) -> Optional[Message]:
        """The newest message (again if nothing newer came); None before the first publish, or
        when the newest slot cannot be read in a bounded number of tries in total (see channel.h:
        a stopped writer, or one publishing over the slot faster than we copy, then counted in
        busy_returns)."""
        m = self._m
        m.check()
        first_p, moved = None, False
        for _ in range(_READ_TRIES):
            p = self._published()
            if p == 0:
                return None
            self._barrier()  # published_seq before the slot it names
            v1 = _U64.unpack_from(m.mm, m.slot(p))[0]
            if v1 == 2 * p + 1:
                return None  # a one-slot ring: p is being overwritten by p + 1 (see channel.cc)
            if v1 < 2 * p:
                return None  # older than published_seq vouches for: a damaged file
            data = self._copy(p, v1) if v1 == 2 * p else None
            if data is None:
                # Lapped: published_seq passes p within the newer publish. Bounded in total as in
                # channel.cc: a stopped writer, a damaged file or a flooding writer ends in None.
                if first_p is None:
                    first_p = p
                moved = moved or p != first_p
                continue
            missed = 0
            if p >= self.next_seq:
                missed = self._pending_missed + p - self.next_seq
                self.total_missed += missed
                self._pending_missed = 0
                self.next_seq = p + 1
            return Message(p, missed, data)
        if moved:
            self.busy_returns += 1
        return None
