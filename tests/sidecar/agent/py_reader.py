"""The Python reader app of the multi-process tests: same contract as reader_helper follow.

usage: py_reader.py SHM_DIR MODEL UNTIL_VERSION PROGRESS_FILE DEADLINE_S
"""
import os
import random
import sys
import time

sys.path.insert(0, os.environ["MODELSWAP_PYTHON_PATH"])
import modelswap  # noqa: E402


def main():
    shm, model, until, progress, deadline = sys.argv[1:6]
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
