"""XXH3-64 (with seed) in pure Python: the key hash of .msf lookups (sidecar/msf/format.h).

A transcription of xxHash 0.8's scalar XXH3_64bits_withSeed (xxhash.h), so the Python client
needs no compiled part. Keys are usually short, which takes the fast branches (<= 16, <= 128,
<= 240 bytes); longer keys take the striped long-hash path. If the `xxhash` package is
importable it is used instead (same results, faster). tests/sidecar/client/model/xxh3_test.py checks this
module against the C++ implementation over every length from 0 to 1100 bytes and several seeds.
"""

import struct

_M64 = 0xFFFFFFFFFFFFFFFF
P32_1, P32_2, P32_3 = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D
P64_1, P64_2, P64_3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
P64_4, P64_5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5

K_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e")
assert len(K_SECRET) == 192


def _r64(b, i):
    return struct.unpack_from("<Q", b, i)[0]


def _r32(b, i):
    return struct.unpack_from("<I", b, i)[0]


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _swap32(x):
    return int.from_bytes(x.to_bytes(4, "little"), "big")


def _swap64(x):
    return int.from_bytes(x.to_bytes(8, "little"), "big")


def _fold(a, b):
    p = a * b
    return (p & _M64) ^ (p >> 64)


def _xxh64_avalanche(h):
    h ^= h >> 33
    h = (h * P64_2) & _M64
    h ^= h >> 29
    h = (h * P64_3) & _M64
    return h ^ (h >> 32)


def _avalanche(h):
    h ^= h >> 37
    h = (h * 0x165667919E3779F9) & _M64
    return h ^ (h >> 32)


def _rrmxmx(h, length):
    h ^= _rotl(h, 49) ^ _rotl(h, 24)
    h = (h * 0x9FB21C651E98DF25) & _M64
    h ^= (h >> 35) + length
    h = (h * 0x9FB21C651E98DF25) & _M64
    return h ^ (h >> 28)


def _mix16(data, i, secret, s, seed):
    lo = _r64(data, i)
    hi = _r64(data, i + 8)
    return _fold(lo ^ ((_r64(secret, s) + seed) & _M64), hi ^ ((_r64(secret, s + 8) - seed) & _M64))


def _len_0to16(data, n, secret, seed):
    if n > 8:
        bf1 = ((_r64(secret, 24) ^ _r64(secret, 32)) + seed) & _M64
        bf2 = ((_r64(secret, 40) ^ _r64(secret, 48)) - seed) & _M64
        lo = _r64(data, 0) ^ bf1
        hi = _r64(data, n - 8) ^ bf2
        acc = (n + _swap64(lo) + hi + _fold(lo, hi)) & _M64
        return _avalanche(acc)
    if n >= 4:
        seed ^= _swap32(seed & 0xFFFFFFFF) << 32
        in1 = _r32(data, 0)
        in2 = _r32(data, n - 4)
        bf = ((_r64(secret, 8) ^ _r64(secret, 16)) - seed) & _M64
        return _rrmxmx(((in2 + (in1 << 32)) & _M64) ^ bf, n)
    if n > 0:
        c1, c2, c3 = data[0], data[n >> 1], data[n - 1]
        combined = (c1 << 16) | (c2 << 24) | c3 | (n << 8)
        bf = ((_r32(secret, 0) ^ _r32(secret, 4)) + seed) & _M64
        return _xxh64_avalanche(combined ^ bf)
    return _xxh64_avalanche(seed ^ _r64(secret, 56) ^ _r64(secret, 64))


def _len_17to128(data, n, secret, seed):
    acc = (n * P64_1) & _M64
    if n > 32:
        if n > 64:
            if n > 96:
                acc += _mix16(data, 48, secret, 96, seed)
                acc += _mix16(data, n - 64, secret, 112, seed)
            acc += _mix16(data, 32, secret, 64, seed)
            acc += _mix16(data, n - 48, secret, 80, seed)
        acc += _mix16(data, 16, secret, 32, seed)
        acc += _mix16(data, n - 32, secret, 48, seed)
    acc += _mix16(data, 0, secret, 0, seed)
    acc += _mix16(data, n - 16, secret, 16, seed)
    return _avalanche(acc & _M64)


def _len_129to240(data, n, secret, seed):
    acc = (n * P64_1) & _M64
    for i in range(8):
        acc += _mix16(data, 16 * i, secret, 16 * i, seed)
    acc = _avalanche(acc & _M64)
    for i in range(8, n // 16):
        acc += _mix16(data, 16 * i, secret, 16 * (i - 8) + 3, seed)
    acc += _mix16(data, n - 16, secret, 136 - 17, seed)
    return _avalanche(acc & _M64)


def _accumulate_512(acc, data, i, secret, s):
    for j in range(8):
        v = _r64(data, i + 8 * j)
        k = v ^ _r64(secret, s + 8 * j)
        acc[j ^ 1] = (acc[j ^ 1] + v) & _M64
        acc[j] = (acc[j] + (k & 0xFFFFFFFF) * (k >> 32)) & _M64


def _scramble(acc, secret, s):
    for j in range(8):
        a = acc[j]
        a ^= a >> 47
        a ^= _r64(secret, s + 8 * j)
        acc[j] = (a * P32_1) & _M64


def _hash_long(data, n, secret):
    acc = [P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1]
    size = len(secret)
    stripes_per_block = (size - 64) // 8
    block_len = 64 * stripes_per_block
    nb_blocks = (n - 1) // block_len
    for b in range(nb_blocks):
        for s in range(stripes_per_block):
            _accumulate_512(acc, data, b * block_len + s * 64, secret, s * 8)
        _scramble(acc, secret, size - 64)
    nb_stripes = ((n - 1) - block_len * nb_blocks) // 64
    for s in range(nb_stripes):
        _accumulate_512(acc, data, nb_blocks * block_len + s * 64, secret, s * 8)
    _accumulate_512(acc, data, n - 64, secret, size - 64 - 7)
    result = (n * P64_1) & _M64
    for i in range(4):
        result += _fold(acc[2 * i] ^ _r64(secret, 11 + 16 * i),
                        acc[2 * i + 1] ^ _r64(secret, 11 + 16 * i + 8))
    return _avalanche(result & _M64)


def _custom_secret(seed):
    out = bytearray(192)
    for i in range(12):
        struct.pack_into("<QQ", out, 16 * i, (_r64(K_SECRET, 16 * i) + seed) & _M64,
                         (_r64(K_SECRET, 16 * i + 8) - seed) & _M64)
    return bytes(out)


def xxh3_64_pure(data, seed=0):
    data = bytes(data)
    n = len(data)
    seed &= _M64
    if n <= 16:
        return _len_0to16(data, n, K_SECRET, seed)
    if n <= 128:
        return _len_17to128(data, n, K_SECRET, seed)
    if n <= 240:
        return _len_129to240(data, n, K_SECRET, seed)
    return _hash_long(data, n, K_SECRET if seed == 0 else _custom_secret(seed))


try:  # the optional accelerated package (>= 2.0 has XXH3) computes the same function
    from xxhash import xxh3_64_intdigest as _fast

    def xxh3_64(data, seed=0):
        return _fast(bytes(data), seed=seed & _M64)
except ImportError:  # pragma: no cover - depends on the environment
    xxh3_64 = xxh3_64_pure
