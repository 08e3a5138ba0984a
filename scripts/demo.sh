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

say "starting the agent (model ranker, shm $run/shm, http 127.0.0.1:$port)"
"$sidecar" agent --root "$run/volume" --models ranker --shm-dir "$run/shm" \
  --listen "127.0.0.1:$port" --poll-interval 200 --log-level info >"$run/agent.log" 2>&1 &
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
curl -fsS "http://127.0.0.1:$port/v1/status" | python3 -m json.tool | head -40

say "summary"
python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
print(f"   lookups: {s['lookups']:,}   failed: {s['missing']}   torn reads: {s['torn']}")
print(f"   versions served, in order, by one process: {' -> '.join(s['versions_seen'])}")
PY
[ "$app_rc" = 0 ] || fail "the sample app saw failed or torn lookups (see $run/app.log)"
echo "   demo OK: v1 -> v2 -> v1 (rollback) hot-swapped with no restart and no failed lookup"
