"""The Python reader app of the multi-process tests: same contract as reader_helper follow, or
with CHAIN_SPEC and KEYS as reader_helper follow-chain (tests/sidecar/agent/chain_spec.h, whose
rules are transcribed below: every value, deletion and layer count of the handle's version).

usage: py_reader.py SHM_DIR MODEL UNTIL_VERSION PROGRESS_FILE DEADLINE_S [CHAIN_SPEC KEYS]
"""
import os
import random
import sys
import time

sys.path.insert(0, os.environ["MODELSWAP_PYTHON_PATH"])
import modelswap  # noqa: E402


def parse_spec(text):
    """[(version, kind, source index)] as ParseChainSpec: full, delta on the previous, compact."""
    out = []
    for item in text.split(","):
        name, _, source = item.partition("=")
        if not out:
            out.append((name, "full", -1))
        elif source:
            out.append((name, "compact", [e[0] for e in out].index(source)))
        else:
            out.append((name, "delta", -1))
    return out


def expected(spec, i, model, k):
    """SpecExpected: the prefix key k's value starts with in version i, None if deleted."""
    name, kind, source = spec[i]
    if kind == "full":
        return ("%s/%s/%d/" % (model, name, k)).encode()
    if kind == "compact":
        return expected(spec, source, model, k)
    if k % 4 == i % 4:
        return ("%s/%s/%d/" % (model, name, k)).encode()
    if k % 7 == i % 7:
        return None
    return expected(spec, i - 1, model, k)


def layers(spec, i):
    return 1 + layers(spec, i - 1) if spec[i][1] == "delta" else 1


def check_chain(spec, keys, model, h):
    """One lookup through a chain: True if it is what the handle's version holds."""
    index = [e[0] for e in spec].index(h.version) if h.version in [e[0] for e in spec] else -1
    if index < 0 or h.layer_count != layers(spec, index):
        return False
    k = random.randrange(keys)
    v = h.get(str(k).encode())
    want = expected(spec, index, model, k)
    if want is None:
        return v is None
    return v is not None and bytes(v[:len(want)]) == want


def main():
    shm, model, until, progress, deadline = sys.argv[1:6]
    spec = parse_spec(sys.argv[6]) if len(sys.argv) > 7 else None
    keys = int(sys.argv[7]) if spec else 0
    end = time.monotonic() + float(deadline)
    m = modelswap.Model(model, shm_dir=shm)
    lookups = torn = after_last = 0
    versions = set()
    last = ""

    def report():
        with open(progress + ".tmp", "w") as f:
            f.write("%d %d %d %d %s\n" % (lookups, torn, len(versions), m.reattaches, last))
        os.replace(progress + ".tmp", progress)

    while after_last < 300 and time.monotonic() < end:
        try:
            h = m.acquire()
        except modelswap.Unavailable:
            continue
        for _ in range(4):
            if spec:
                torn += 0 if check_chain(spec, keys, model, h) else 1
                lookups += 1
                continue
            k = random.randrange(h.entry_count)
            v = h.get(str(k).encode())
            want = ("%s/%s/%d/" % (model, h.version, k)).encode()
            if v is None or bytes(v[:len(want)]) != want:
                torn += 1
            lookups += 1
        last = h.version
        versions.add(last)
        if last == until:
            after_last += 4
        if lookups % 64 == 0:
            report()
    report()
    m.close()
    sys.exit(0 if last == until else 1)


main()
