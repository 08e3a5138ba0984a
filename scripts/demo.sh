#!/usr/bin/env bash
# The local end-to-end demo, no cluster needed (the README's first command):
#   standalone operator + agent + a sample app that looks keys up continuously;
#   apply ModelVersion ranker-v1, then ranker-v2, then roll back to v1 (by annotation), and watch
#   the app move v1 -> v2 -> v1 with no restart and no failed lookup.
# Everything runs from ./demo-run (removed at the start of each run). Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
run="$repo/demo-run"
port=${MODELSWAP_DEMO_PORT:-18471}
JOBS=${JOBS:-$(nproc)}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\n\033[31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

say "installing Debian packages (once)"
scripts/install-deps.sh

say "building modelswap (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS" --target modelswap-sidecar modelswap-operator sample-app
sidecar=build/sidecar/modelswap-sidecar
operator=build/operator/modelswap-operator
app=build/examples/sample-app

rm -rf "$run"
mkdir -p "$run/modelversions" "$run/volume" "$run/shm"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Waits until a ModelVersion's status file says phase == $2, printing phase changes.
wait_phase() {
  local name=$1 want=$2 deadline=$((SECONDS + 180)) last=""
  while [ $SECONDS -lt $deadline ]; do
    local phase
    phase=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status",{}).get("phase",""))' \
      "$run/modelversions/.status/$name.json" 2>/dev/null || true)
    [ "$phase" != "$last" ] && [ -n "$phase" ] && echo "   $name: $phase" && last=$phase
    [ "$phase" = "$want" ] && return 0
    [ "$phase" = "Failed" ] && fail "$name failed: $(cat "$run/modelversions/.status/$name.json")"
    sleep 0.2
  done
  fail "$name did not reach $want in 180 s (see $run/operator.log)"
}

say "starting the standalone operator (watches $run/modelversions)"
"$operator" --standalone "$run/modelversions" --root "$run/volume" --sidecar-bin "$sidecar" \
  --log-level info >"$run/operator.log" 2>&1 &
pids+=($!)

say "starting the agent (model ranker, shm $run/shm, node cache $run/node-cache, http 127.0.0.1:$port)"
# Versions are written as content-addressed chunks (the writer's default); the agent assembles
# each one once in the node cache, from the chunks it lacks and the previous version's file.
"$sidecar" agent --root "$run/volume" --models ranker --shm-dir "$run/shm" \
  --cache-dir "$run/node-cache" --listen "127.0.0.1:$port" --poll-interval 200 \
  --log-level info >"$run/agent.log" 2>&1 &
pids+=($!)

say "kubectl apply -f ranker-v1.yaml (here: copy it into the watched directory)"
cp examples/demo/ranker-v1.yaml "$run/modelversions/"
wait_phase ranker-v1 Active

say "waiting for the agent to load, verify and prefault v1"
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || fail "agent not ready (see $run/agent.log)"
echo "   agent ready"

say "starting the sample app: continuous lookups through the C++ client"
"$app" --model ranker --shm-dir "$run/shm" --until-version v2,v1 --progress >"$run/app.log" 2>&1 &
app_pid=$!
pids+=($app_pid)
# Show the app's own lines (a progress line a second) while versions roll under it.
tail -n +1 -f "$run/app.log" | sed -u 's/^/   app | /' &
pids+=($!)
sleep 2

say "kubectl apply -f ranker-v2.yaml: the app keeps serving while v2 is written and swapped in"
cp examples/demo/ranker-v2.yaml "$run/modelversions/"
wait_phase ranker-v2 Active
wait_phase ranker-v1 Superseded
# What v2 cost: chunks the writer uploaded (its result JSON, kept by the standalone operator) and
# how the node cache put v2 together (the agent's status once v2 is active).
python3 - "http://127.0.0.1:$port/v1/status" "$run/modelversions/.status/tasks" <<'PY' || true
import glob, json, os, sys, time, urllib.request
for _ in range(300):
    try:
        active = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))["models"]["ranker"]["active"]
    except Exception:
        active = None
    if active and active.get("version") == "v2":
        break
    time.sleep(0.1)
mib = lambda b: f"{b / 2**20:.1f} MiB"
for path in glob.glob(os.path.join(sys.argv[2], "*.out")):
    try:
        w = json.loads(open(path).read().strip().splitlines()[-1])
    except (ValueError, IndexError, OSError):
        continue
    if w.get("version") == "v2" and "chunks" in w:
        c = w["chunks"]
        print(f"   writer v2: {c['new']} of {c['total']} chunks new ({mib(c['bytes_new'])} uploaded, "
              f"{mib(c['stored_bytes_new'])} compressed), {mib(c['bytes_reused'])} already stored")
if active and active.get("version") == "v2" and "assemble" in active:
    a = active["assemble"]
    print(f"   node cache v2: {a['chunks_fetched']} of {a['chunks_total']} chunks fetched "
          f"({mib(a['bytes_fetched'])}), {a['chunks_from_cache']} from the node's chunk cache, "
          f"{a['chunks_from_previous']} from v1's assembled file ({mib(a['bytes_from_previous'])}), "
          f"{a['holes']} holes")
PY
sleep 2

say "roll back: kubectl annotate mv ranker-v1 modelswap.io/activate-requested-at=<now> (here: in its file)"
requested=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sed "s/^metadata:\$/metadata:\n  annotations:\n    modelswap.io\/activate-requested-at: \"$requested\"/" \
  examples/demo/ranker-v1.yaml >"$run/ranker-v1.yaml.new"
mv "$run/ranker-v1.yaml.new" "$run/modelversions/ranker-v1.yaml"  # one rename: never half-read
wait_phase ranker-v1 Active
wait_phase ranker-v2 Superseded

say "waiting for the app to move back to v1 (same process, pid $app_pid)"
app_rc=0
wait "$app_pid" || app_rc=$?
summary=$(tail -n 1 "$run/app.log")

say "agent status"
# sed reads it all (head would stop early, and pipefail would count the writer's SIGPIPE).
curl -fsS "http://127.0.0.1:$port/v1/status" | python3 -m json.tool | sed -n '1,40p'

say "summary"
python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
print(f"   lookups: {s['lookups']:,}   failed: {s['missing']}   torn reads: {s['torn']}")
print(f"   versions served, in order, by one process: {' -> '.join(s['versions_seen'])}")
PY
[ "$app_rc" = 0 ] || fail "the sample app saw failed or torn lookups (see $run/app.log)"
echo "   demo OK: v1 -> v2 -> v1 (rollback) hot-swapped with no restart and no failed lookup"
