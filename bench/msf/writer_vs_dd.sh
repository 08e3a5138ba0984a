#!/usr/bin/env bash
# Writer throughput vs dd on the same filesystem (issue 2): both write ~2 GiB and fsync.
#   bench/msf/writer_vs_dd.sh [DIR] [BYTES]     (DIR default /tmp, BYTES default 2147483648)
# Prints MB/s for each and the ratio writer/dd (target >= 0.9). Run from the repo root after a build.
set -euo pipefail
dir=${1:-/tmp}
bytes=${2:-2147483648}
bin=${MODELSWAP_SIDECAR:-build/sidecar/modelswap-sidecar}
work=$(mktemp -d "$dir/modelswap-writer-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

sync
t0=$(now)
dd if=/dev/zero of="$work/dd.bin" bs=1M count=$((bytes >> 20)) conv=fsync status=none
t1=$(now)
rm -f "$work/dd.bin"; sync
out=$("$bin" write --root "$work" --model bench --version v1 --generate-bytes "$bytes" --seed 1)
t2=$(now)
written=$(sed -E 's/.*"bytes":([0-9]+).*/\1/' <<<"$out")
python3 - "$bytes" "$t0" "$t1" "$written" "$t1" "$t2" <<'PY'
import sys
dd_bytes, t0, t1, w_bytes, t2, t3 = map(float, sys.argv[1:])
dd = dd_bytes / (t1 - t0) / 1e6
w = w_bytes / (t3 - t2) / 1e6
print(f"dd (bs=1M conv=fsync): {dd:.0f} MB/s   modelswap write: {w:.0f} MB/s   ratio {w/dd:.2f}x (target >= 0.9x)")
PY
