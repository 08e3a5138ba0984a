"""The Python app of the truncation tests (app_sigbus_test.cc): sigbus_app.cc's contract.

usage: sigbus_app.py SHM_DIR MODEL FALLBACK_VERSION PROGRESS_FILE DEADLINE_S

Acquires a handle, copies every value of its version, writes "ready <version>", looks keys up
on the pinned handle while the test truncates the file, then acquires again until FALLBACK is
served. Writes "done lookups ok errors torn raced final_version"; exits 0 if the damage was
reported (modelswap.Damaged), nothing torn was read and it ended on FALLBACK.
"""
import os
import sys
import time

sys.path.insert(0, os.environ["MODELSWAP_PYTHON_PATH"])
import modelswap  # noqa: E402


def write_progress(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.replace(path + ".tmp", path)


def main():
    shm, model, fallback, progress, deadline = sys.argv[1:6]
    end = time.monotonic() + float(deadline)
    m = modelswap.Model(model, shm_dir=shm)
    h = m.acquire()
    want = [bytes(h.get(str(k).encode())) for k in range(h.entry_count)]
    write_progress(progress, "ready " + h.version)
    lookups = ok = errors = torn = after_error = 0
    i = 0
    while after_error < 300 and time.monotonic() < end:
        k = i % len(want)
        i += 1
        lookups += 1
        try:
            v = h.get(str(k).encode())
        except modelswap.Damaged:
            errors += 1
            after_error += 1
            continue
        if after_error or v is None or bytes(v) != want[k]:
            torn += 1  # values are copies: no race can change one after get() returned it
        else:
            ok += 1
    final = "-"
    while time.monotonic() < end:
        try:
            h = m.acquire()
            if h.version == fallback:
                final = fallback
                break
        except modelswap.ModelswapError:
            pass
        time.sleep(0.001)
    for k in range(200 if final != "-" else 0):
        v = h.get(str(k).encode())
        if v is None or not bytes(v).startswith(("%s/%s/%d/" % (model, fallback, k)).encode()):
            torn += 1
    write_progress(progress, "done %d %d %d %d 0 %s" % (lookups, ok, errors, torn, final))
    m.close()
    sys.exit(0 if errors and not torn and final == fallback else 1)


main()
