"""python_client_bench: the Python client's acquire() + get() per lookup, against the baseline of
the lookup alone on a held handle (no acquire), both with the pure-Python XXH3.

usage: python_client_bench.py SIDECAR_BINARY [SECONDS]

Writes a small synthetic version, runs the real agent on it, and times lookups for SECONDS
(default 2) each. Prints us/op and the ratio.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sidecar", "client",
                                "python"))
import modelswap  # noqa: E402


def timed(fn, seconds):
    n, end = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        for _ in range(100):
            fn()
        n += 100
    return (time.perf_counter() - start) / n * 1e6


def main():
    sidecar, seconds = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    d = tempfile.mkdtemp(prefix="py-client-bench-")
    agent = None
    try:
        subprocess.run([sidecar, "write", "--root", d + "/root", "--model", "m", "--version", "v1",
                        "--generate-bytes", str(8 << 20), "--value-bytes", "256", "--publish"],
                       check=True, stdout=subprocess.DEVNULL)
        agent = subprocess.Popen([sidecar, "agent", "--root", d + "/root", "--models", "m",
                                  "--shm-dir", d + "/shm", "--listen", ""])
        model = None
        while model is None:
            try:
                model = modelswap.Model("m", shm_dir=d + "/shm")
                model.acquire()
            except modelswap.Unavailable:
                model = None
                time.sleep(0.01)
        n = model.acquire().entry_count
        keys = [str(random.randrange(n)).encode() for _ in range(4096)]
        it = iter(range(1 << 62))
        held = model.acquire()
        base = timed(lambda: held.get(keys[next(it) & 4095]), seconds)
        full = timed(lambda: model.acquire().get(keys[next(it) & 4095]), seconds)
        print("python get on a held handle   %7.2f us/op" % base)
        print("python acquire() + get()      %7.2f us/op" % full)
        print("ratio acquire+get / get = %.2fx" % (full / base))
        model.close()
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait()
        shutil.rmtree(d, ignore_errors=True)


main()
