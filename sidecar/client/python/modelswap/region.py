"""Python end of modelswap state regions (``<shm-dir>/regions/<name>.region``), over the C ABI.

A region is app state that survives a SIGKILL of the app (it lives in the pod's memory emptyDir)
and of the pod (the agent's snapshot host persists committed states and restores the newest one
into a new pod's region before the app starts). The app keeps its state in ``Region.data``,
declares each change before making it (``mark_dirty`` or ``write``), and calls ``commit()`` when
the state is consistent; after a crash the next open finds exactly the last committed state.

Unlike channels (channel.py), this is not pure Python: the commit protocol needs a sequentially
consistent store/load pair with the host (region_layout.h), which Python cannot issue, so every
call goes through ``libmodelswap_region.so`` (the C ABI of modelswap_region.h, built from this
repository as the CMake target ``modelswap_region_c``) with ctypes. The library is found through
the ``lib`` argument, else ``$MODELSWAP_REGION_LIB``, else the system's library path.

Threading: a Region's methods may be called from any thread (a lock serialises them; the C ABI
allows one call per handle at a time), but changing ``data`` must not race with ``commit()``:
commit when the state is consistent. Fork: a Region belongs to the process that opened it; in a
forked child every call raises and ``data`` reads zeros, because the child lets go of the region
file at the fork (ms_region_abandon_after_fork), so the attach lock ends with the parent (a
pre-forking server's workers would otherwise keep a SIGKILLed parent's restart from attaching). Errors: RegionError, whose ``code`` is a modelswap
Code name ("InvalidArgument", "FailedPrecondition", ...), as in channel.py.

A region file truncated under the process: the C library registers its mapping with its SIGBUS
guard (common/mapping_guard.h), so reads and stores through ``data`` resume on zero pages instead
of killing the interpreter. But from then on writes and commits reach no file, and the C ABI has
no call that says so; so this module keeps its own read-only descriptor of the region file and
compares its size with the size at open around every commit(): a shorter file makes commit()
raise RegionError "Aborted" naming the file and "truncated" (reopen the region: the snapshot host
restores the newest durable state), never return a generation that no file holds. A truncation
after the second check of a commit is reported by the next commit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import weakref
from typing import NamedTuple, Optional

__all__ = ["AttachInfo", "Region", "RegionError", "load_library"]

# modelswap::Code in order; a C status is the negated index (modelswap_region.h).
_CODES = ("Ok", "InvalidArgument", "NotFound", "AlreadyExists", "Corruption", "IOError",
          "NotSupported", "Unavailable", "FailedPrecondition", "Aborted", "DeadlineExceeded",
          "PermissionDenied", "Internal")


class RegionError(Exception):
    """A failed region call: ``code`` names the modelswap Code, the message says what failed."""

    def __init__(self, code: str, message: str):
        # The C ABI's messages already start with their code name.
        super().__init__(message if message.startswith(code + ":") else f"{code}: {message}")
        self.code = code
        self.message = message


class AttachInfo(NamedTuple):
    """What opening the region found and did (ms_region_attach_info)."""
    generation: int          # committed generation after recovery (0 = never committed)
    restored_gen: int        # generation the agent restored the region from (0 = none)
    rolled_back_blocks: int  # blocks whose uncommitted writes were undone
    created: bool            # this open created the region (all zeros)
    rolled_forward: bool     # a commit that a crash interrupted was completed


class _CAttachInfo(ctypes.Structure):
    _fields_ = [("generation", ctypes.c_uint64), ("restored_gen", ctypes.c_uint64),
                ("rolled_back_blocks", ctypes.c_uint64), ("created", ctypes.c_uint8),
                ("rolled_forward", ctypes.c_uint8), ("reserved", ctypes.c_uint8 * 6)]


_lib_cache: dict = {}


def load_library(path: Optional[str] = None) -> ctypes.CDLL:
    """Loads libmodelswap_region.so (see the module comment for where it is looked for)."""
    path = path or os.environ.get("MODELSWAP_REGION_LIB") or ctypes.util.find_library(
        "modelswap_region")
    if not path:
        raise RegionError("NotFound", "libmodelswap_region.so not found: build the CMake target "
                          "modelswap_region_c and set MODELSWAP_REGION_LIB to its path")
    if path in _lib_cache:
        return _lib_cache[path]
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise RegionError("NotFound", f"cannot load {path}: {e}") from None
    u64, u32, vp = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p
    signatures = {
        "ms_region_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, u64, u32,
                                          ctypes.POINTER(vp), ctypes.POINTER(_CAttachInfo)]),
        "ms_region_data": (vp, [vp]),
        "ms_region_size": (u64, [vp]),
        "ms_region_mark_dirty": (ctypes.c_int, [vp, u64, u64]),
        "ms_region_write": (ctypes.c_int, [vp, u64, ctypes.c_char_p, u64]),
        "ms_region_commit": (u64, [vp]),
        "ms_region_generation": (u64, [vp]),
        "ms_region_durable_generation": (u64, [vp]),
        "ms_region_close": (None, [vp]),
        "ms_region_abandon_after_fork": (None, [vp]),
        "ms_region_last_error": (ctypes.c_char_p, []),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    _lib_cache[path] = lib
    return lib


def _check_range(bits: int = 64, **values: int) -> None:
    # ctypes silently wraps an int to the C width: -1 would become a huge offset and 2**64 zero.
    for name, value in values.items():
        if not 0 <= value < 1 << bits:
            raise RegionError("InvalidArgument",
                              f"{name} must be in [0, 2**{bits}), got {value}")


def _c_string(what: str, value: str) -> bytes:
    # C would stop at an embedded NUL and open another region ("a\0b" -> "a").
    if "\0" in value:
        raise RegionError("InvalidArgument", f"{what} contains a NUL character: {value!r}")
    return value.encode()


# Handles open in this process: (lib, handle, finalizer) by handle address. After a fork the child
# closes its copies of their descriptors (see the module comment) and forgets them.
_open_handles: dict = {}
_open_lock = threading.Lock()


def _close_handle(lib: ctypes.CDLL, address: int) -> None:
    with _open_lock:
        _open_handles.pop(address, None)
    lib.ms_region_close(ctypes.c_void_p(address))


def _after_fork_in_child() -> None:
    global _open_lock
    _open_lock = threading.Lock()  # the parent may have held it at the fork
    for lib, address, finalizer in list(_open_handles.values()):
        finalizer.detach()  # never closed in the child: ms_region_abandon_after_fork instead
        lib.ms_region_abandon_after_fork(ctypes.c_void_p(address))
    _open_handles.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _region_path(shm_dir: Optional[str], name: str) -> str:
    # As the C library: ResolveShmDir (common/names.cc) and RegionPath (region_file.cc).
    shm_dir = shm_dir or os.environ.get("MODELSWAP_SHM_DIR") or "/dev/shm/modelswap"
    return f"{shm_dir}/regions/{name}.region"


class _Closer:
    """Closes a descriptor once: at close(), else when the Region is collected."""

    def __init__(self, fd: int):
        self._fd = fd

    def __call__(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self()


def _open_for_size(path: str):
    """(fd, size at open, closer) of the region file, for Region._check_file; (None, 0, no-op)
    if it cannot be opened (commits are then not checked). A second descriptor of the file is
    safe: the C library's locks are flock/OFD locks (common/shm_file.h), which closing another
    descriptor does not drop."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, 0, lambda: None
    return fd, os.fstat(fd).st_size, _Closer(fd)


class Region:
    """An open region. ``data`` is a writable memoryview of its bytes.

    The mapping lives as long as anything can reach it: close() refuses while views derived from
    ``data`` are alive, and a Region dropped without close() is closed (uncommitted writes rolled
    back at the next open) once the last view of its memory is gone.
    """

    def __init__(self, name: str, size: int, *, shm_dir: Optional[str] = None,
                 block_bytes: int = 0, lib: Optional[str] = None):
        _check_range(size=size)
        _check_range(32, block_bytes=block_bytes)
        c_name = _c_string("name", name)
        c_dir = _c_string("shm_dir", shm_dir) if shm_dir is not None else None
        self._lib = load_library(lib)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._handle = None
        handle = ctypes.c_void_p()
        info = _CAttachInfo()
        self._check(self._lib.ms_region_open(c_dir, c_name, size, block_bytes,
                                             ctypes.byref(handle), ctypes.byref(info)))
        try:
            self.size = int(self._lib.ms_region_size(handle))
            # Every view of the memory (data, its slices, numpy arrays over it) keeps `raw` alive,
            # so the region is closed only when `raw` goes: by close(), or by this finalizer. Not
            # at interpreter exit (atexit): threads may still use views then; the kernel unmaps
            # and drops the lock when the process ends anyway.
            self._raw = (ctypes.c_char * self.size).from_address(self._lib.ms_region_data(handle))
            self._close_region = weakref.finalize(self._raw, _close_handle, self._lib,
                                                  handle.value)
            self._close_region.atexit = False
        except BaseException:  # e.g. KeyboardInterrupt: never leak the handle and its lock
            self._lib.ms_region_close(handle)
            raise
        with _open_lock:
            _open_handles[handle.value] = (self._lib, handle.value, self._close_region)
        self._handle = handle
        self.info = AttachInfo(info.generation, info.restored_gen, info.rolled_back_blocks,
                               bool(info.created), bool(info.rolled_forward))
        self.data = memoryview(self._raw).cast("B")
        self._path = _region_path(shm_dir, name)
        self._file_fd, self._file_bytes, self._close_file = _open_for_size(self._path)

    def _check_file(self) -> None:
        """Raises RegionError "Aborted" if the region file is shorter than at open (docstring)."""
        if self._file_fd is None:
            return
        size = os.fstat(self._file_fd).st_size
        if size < self._file_bytes:
            raise RegionError("Aborted", f"region file {self._path} was truncated to {size} bytes "
                                         f"under this process (was {self._file_bytes}): commits "
                                         "reach no file; reopen the region")

    def _check(self, status: int) -> None:
        if status != 0:
            code = _CODES[-status] if 0 < -status < len(_CODES) else f"Status{status}"
            raise RegionError(code, self._lib.ms_region_last_error().decode(errors="replace"))

    def _open_handle(self) -> ctypes.c_void_p:
        # Called with self._lock held.
        if self._pid != os.getpid():
            raise RegionError("FailedPrecondition",
                              f"region was opened by process {self._pid}; a forked child must "
                              "open its own (after the parent has closed it)")
        if self._handle is None:
            raise RegionError("FailedPrecondition", "region is closed")
        return self._handle

    def mark_dirty(self, offset: int, length: int) -> None:
        """Declares that data[offset:offset+length] is about to change (call BEFORE changing)."""
        _check_range(offset=offset, length=length)
        with self._lock:
            self._check(self._lib.ms_region_mark_dirty(self._open_handle(), offset, length))

    def write(self, offset: int, data: bytes) -> None:
        """mark_dirty + copy of ``data`` (any bytes-like object) to ``offset``."""
        _check_range(offset=offset)
        view = memoryview(data).tobytes()  # bytes(n) of an int would quietly write n zeros
        with self._lock:
            self._check(self._lib.ms_region_write(self._open_handle(), offset, view, len(view)))

    def commit(self) -> int:
        """Makes the current content the committed state; returns its generation. Wait-free."""
        with self._lock:
            handle = self._open_handle()
            self._check_file()
            generation = int(self._lib.ms_region_commit(handle))
            self._check_file()  # cut during the commit: it reached no file either
            return generation

    @property
    def generation(self) -> int:
        with self._lock:
            return int(self._lib.ms_region_generation(self._open_handle()))

    @property
    def durable_generation(self) -> int:
        """Newest generation the agent has made durable (an estimate; it advances on its own)."""
        with self._lock:
            return int(self._lib.ms_region_durable_generation(self._open_handle()))

    def close(self) -> None:
        """Detaches and unmaps; uncommitted writes are rolled back at the next open. Idempotent.

        Refuses (FailedPrecondition) while views derived from ``data`` are alive (slices,
        memoryview() copies, numpy arrays over it), which would otherwise point at unmapped
        memory; ``data`` stays usable then: drop the views and call close() again.
        """
        with self._lock:
            if self._handle is None:
                return
            self._open_handle()  # a forked child must not unmap the parent's view of it
            try:
                self.data.release()
            except BufferError:  # something holds a buffer export of data itself
                raise RegionError("FailedPrecondition",
                                  "views of Region.data are still in use; drop them before "
                                  "close()") from None
            # References to raw now: self._raw and getrefcount's argument; a third is a view.
            if sys.getrefcount(self._raw) > 2:
                self.data = memoryview(self._raw).cast("B")
                raise RegionError("FailedPrecondition",
                                  "views of Region.data are still in use; drop them before "
                                  "close()")
            self._close_region()  # ms_region_close, exactly once
            self._close_file()
            self._raw = None
            self._handle = None

    def __enter__(self) -> "Region":
        return self

    def __exit__(self, *exc) -> None:
        # Never raises over an exception in flight: with views still alive, the Region is closed
        # for calls now and unmapped when the last view goes (the finalizer on raw).
        try:
            self.close()
        except RegionError:
            with self._lock:
                self._handle = None
                self.data = None
                self._raw = None
