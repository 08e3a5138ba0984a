"""Self-checking channel payloads, the Python twin of tests/sidecar/client/channel/payload.h.

Word i (8 bytes, little-endian) of message seq is mix(seq, i); a short tail holds its low bytes.
A stop message is 8 bytes: mix(seq, 2**64 - 1).
"""
import struct

_M = (1 << 64) - 1
STOP_INDEX = _M


def mix(seq: int, i: int) -> int:
    return (seq * 0x9E3779B97F4A7C15 + ((i + 1) & _M) * 0xBF58476D1CE4E5B9) & _M


def fill(seq: int, n: int) -> bytes:
    words = (n + 7) // 8
    return struct.pack(f"<{words}Q", *(mix(seq, i) for i in range(words)))[:n]


def check(seq: int, data: bytes) -> bool:
    return data == fill(seq, len(data))


def stop(seq: int) -> bytes:
    return struct.pack("<Q", mix(seq, STOP_INDEX))


def is_stop(seq: int, data: bytes) -> bool:
    return len(data) == 8 and data == stop(seq)
