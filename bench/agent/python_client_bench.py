"""python_client_bench: the Python client's acquire() + get() per lookup, against the baseline of
the lookup alone on a held handle (no acquire), both with the pure-Python XXH3.

usage: python_client_bench.py SIDECAR_BINARY [SECONDS]

Writes a small synthetic version, runs the real agent on it, and times lookups for SECONDS
(default 2) each. Prints us/op and the ratio.

Then chain depths (delta versions, sidecar/client/python/modelswap/msf.py): the version is
followed by deltas written with `write --delta-on` (each upserting 1 % of the keys, drawn at
random, and deleting 0.1 %) and published one by one; lookups on a held handle are timed on the
full version, on the chain of 1 delta and on the chain of 4 deltas, for keys found in the newest
layer (hit_top), keys no delta touches (hit_base: a miss in every delta, then found in the base)
and absent keys (miss), each against the full version's hit or miss time. Targets as for the
C++ client (bench/delta/delta_lookup_bench.cc): 1 delta <= 1.3x, 4 deltas <= 1.6x.
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


def wait_for(model, version):
    deadline = time.monotonic() + 60
    while model.acquire().version != version:
        if time.monotonic() > deadline:
            raise SystemExit("the agent did not switch to %s" % version)
        time.sleep(0.01)
    return model.acquire()


def write_delta(sidecar, d, base, version, n, rng):
    """Writes and publishes `version`, a delta on `base`; returns the keys it upserts and
    deletes."""
    keys = rng.sample(range(n), n // 100 + n // 1000)
    upserts, deletes = keys[:n // 100], keys[n // 100:]
    tsv = os.path.join(d, version + ".tsv")
    with open(tsv, "w") as f:
        for k in upserts:
            f.write("%d\t%s-%d\n" % (k, version, k))
        for k in deletes:
            f.write("%d\t\\N\n" % k)
    subprocess.run([sidecar, "write", "--root", d + "/root", "--model", "m", "--version", version,
                    "--delta-on", base, "--from-tsv", tsv, "--publish"],
                   check=True, stdout=subprocess.DEVNULL)
    return set(upserts), set(deletes)


def chain_cases(sidecar, d, model, n, seconds):
    """Lookups on held handles of the full version and of chains of 1 and 4 deltas."""
    rng = random.Random(3)
    it = iter(range(1 << 62))
    touched = set()
    results = {}
    held = wait_for(model, "v1")
    hit = [str(rng.randrange(n)).encode() for _ in range(4096)]
    miss = [str(n + rng.randrange(n)).encode() for _ in range(4096)]
    results[0] = {"hit": timed(lambda: held.get(hit[next(it) & 4095]), seconds),
                  "miss": timed(lambda: held.get(miss[next(it) & 4095]), seconds)}
    base = "v1"
    for depth in (1, 2, 3, 4):
        version = "d%d" % depth
        upserts, deletes = write_delta(sidecar, d, base, version, n, rng)
        touched |= upserts | deletes
        base = version
        if depth not in (1, 4):
            continue
        h = wait_for(model, version)
        if h.layer_count != depth + 1:
            raise SystemExit("%s has %d layers, expected %d" % (version, h.layer_count, depth + 1))
        top = sorted(upserts)
        hit_top = [str(top[rng.randrange(len(top))]).encode() for _ in range(4096)]
        untouched = [k for k in range(n) if k not in touched]
        hit_base = [str(untouched[rng.randrange(len(untouched))]).encode() for _ in range(4096)]
        results[depth] = {
            "hit_top": timed(lambda: h.get(hit_top[next(it) & 4095]), seconds),
            "hit_base": timed(lambda: h.get(hit_base[next(it) & 4095]), seconds),
            "miss": timed(lambda: h.get(miss[next(it) & 4095]), seconds)}
    full = results[0]
    print("python get, full version (%d keys): hit %7.2f us/op, miss %7.2f us/op"
          % (n, full["hit"], full["miss"]))
    for depth, target in ((1, 1.3), (4, 1.6)):
        r = results[depth]
        print("python get, %d delta%s: hit_top %6.2f us %.2fx, hit_base %6.2f us %.2fx, "
              "miss %6.2f us %.2fx (target <= %.1fx)"
              % (depth, "s" if depth > 1 else " ", r["hit_top"], r["hit_top"] / full["hit"],
                 r["hit_base"], r["hit_base"] / full["hit"], r["miss"], r["miss"] / full["miss"],
                 target))


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
        held = None
        chain_cases(sidecar, d, model, n, seconds)
        model.close()
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait()
        shutil.rmtree(d, ignore_errors=True)


main()
