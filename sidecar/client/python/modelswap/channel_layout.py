"""The layout of a modelswap channel file (``<shm-dir>/channels/<name>.chan``) for the pure-Python
end (channel.py): the constants of sidecar/client/channel/channel_layout.h, transcribed (a test
compares them with the C++ build), the sizes they imply, channel names and paths, and the checks
of a file's header before it is used (as ValidateChannelHeader, channel_open.cc).

The protocol over this layout (the seqlock, the writer's flock, the truncation check) is
channel.py's; everything here reads only header fields that never change once the file exists,
so it needs no care about concurrent access. Errors: ChannelError, whose ``code`` is a modelswap
Code name.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from typing import Optional

if sys.byteorder != "little" or struct.calcsize("Q") != 8:
    raise ImportError("modelswap channels need a little-endian host with 8-byte native Q")

# channel_layout.h, transcribed.
MAGIC = 0x4E4148435057534D  # "MSWPCHAN"
LAYOUT_VERSION = 1
HEADER_BYTES = 256
SLOT_HEADER_BYTES = 16
CACHE_LINE = 64
MAX_SLOTS = 1 << 20
MAX_MESSAGE_BYTES = 1 << 24
MAX_NAME_BYTES = 63
OFF_MAGIC = 0
OFF_LAYOUT_VERSION = 8
OFF_HEADER_BYTES = 12
OFF_SLOT_COUNT = 16
OFF_MESSAGE_BYTES = 20
OFF_SLOT_STRIDE = 24
OFF_SLOT_HEADER_BYTES = 28
OFF_FILE_BYTES = 32
OFF_CREATED_UNIX_NS = 40
OFF_PUBLISHED_SEQ = 64  # atomic
OFF_WRITER_EPOCH = 72  # atomic
SLOT_OFF_VERSION = 0  # atomic
SLOT_OFF_LENGTH = 8

# Native formats: one memcpy of the word's size (see channel.py's docstring). "=" would be
# standard size, assembled byte by byte.
_U64 = struct.Struct("Q")
_U32 = struct.Struct("I")
# The immutable part of the header, read once (standard little-endian, never concurrently changed).
_HEADER = struct.Struct("<QIIIIIIQQ")

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")

class ChannelError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def slot_stride(message_bytes: int) -> int:
    payload = (message_bytes + 7) & ~7
    return (SLOT_HEADER_BYTES + payload + CACHE_LINE - 1) & ~(CACHE_LINE - 1)


def file_bytes(slot_count: int, message_bytes: int) -> int:
    return HEADER_BYTES + slot_count * slot_stride(message_bytes)


def validate_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ChannelError("InvalidArgument",
                           f'channel name "{name}" must match [A-Za-z0-9][A-Za-z0-9._-]{{0,62}}')


def channel_path(shm_dir: str, name: str) -> str:
    return f"{shm_dir}/channels/{name}.chan"


def default_shm_dir() -> str:
    return os.environ.get("MODELSWAP_SHM_DIR") or "/dev/shm/modelswap"


def _check_options(slot_count: int, message_bytes: int) -> Optional[str]:
    if not (0 < slot_count <= MAX_SLOTS) or slot_count & (slot_count - 1):
        return f"slot_count {slot_count} is not a power of two in [1, {MAX_SLOTS}]"
    if not 0 < message_bytes <= MAX_MESSAGE_BYTES:
        return f"message_bytes {message_bytes} is not in [1, {MAX_MESSAGE_BYTES}]"
    return None


def _validate_header(mm, size: int, want_slots: int, want_bytes: int, path: str):
    """Checks the header like ValidateChannelHeader (channel_open.cc); returns (slots, bytes)."""
    def fail(code, msg):
        raise ChannelError(code, f"channel {path}: {msg}")
    if size < HEADER_BYTES:
        fail("Corruption", f"file is {size} bytes, smaller than the {HEADER_BYTES}-byte header")
    (magic, version, header_bytes, slots, msg_bytes, stride, slot_hdr, fbytes,
     _created) = _HEADER.unpack_from(mm, 0)
    if magic != MAGIC:
        fail("Corruption", f"bad magic {magic:#018x}: not a modelswap channel file")
    if version != LAYOUT_VERSION:
        fail("FailedPrecondition",
             f"layout version {version}, this library reads version {LAYOUT_VERSION}")
    if header_bytes != HEADER_BYTES or slot_hdr != SLOT_HEADER_BYTES:
        fail("Corruption", f"header_bytes {header_bytes} / slot_header_bytes {slot_hdr}, "
                           f"expected {HEADER_BYTES} / {SLOT_HEADER_BYTES}")
    problem = _check_options(slots, msg_bytes)
    if problem:
        fail("Corruption", "header: " + problem)
    if stride != slot_stride(msg_bytes):
        fail("Corruption", f"slot_stride {stride} does not match message_bytes {msg_bytes}")
    need = file_bytes(slots, msg_bytes)
    if fbytes != need:
        fail("Corruption", f"header file_bytes {fbytes}, layout needs {need}")
    if size != need:
        fail("Corruption", f"file is {size} bytes, header says {need} (truncated or extended)")
    if want_bytes and msg_bytes != want_bytes:
        fail("FailedPrecondition", f"message size mismatch: channel carries {msg_bytes}-byte "
                                   f"messages, caller expects {want_bytes}")
    if want_slots and slots != want_slots:
        fail("FailedPrecondition",
             f"slot count mismatch: channel has {slots} slots, caller asked for {want_slots}")
    return slots, msg_bytes
