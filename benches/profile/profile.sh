#!/bin/sh
# Where a message's time goes: records one side of a side-by-side bench
# alone with perf (dwarf call graphs), then charges each CPU sample to a
# category (breakdown.py). BENCHMARKS.md "Where a message's time goes".
#
# usage (from the workspace root, after
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo bench --no-run --bench throughput --bench savina):
#   benches/profile/profile.sh NAME BENCH_BINARY SIDE ROWS ROUNDS MESSAGES_PER_ROUND
# e.g.
#   benches/profile/profile.sh cast-molt target/release/deps/throughput-<hash> molt cast 3 1000001
#   benches/profile/profile.sh cast-ractor target/release/deps/throughput-<hash> ractor cast 3 1000001
#   python3 benches/profile/compare.py $OUT/cast-molt.txt $OUT/cast-ractor.txt 4000004 "throughput cast"
# (messages = (ROUNDS + 1 warm-up) × MESSAGES_PER_ROUND). Output in $OUT
# (default /tmp/molt-perf).
set -e
NAME=$1 BIN=$2 SIDE=$3 ROWS=$4 ROUNDS=$5 PER=$6
OUT=${OUT:-/tmp/molt-perf}
HERE=$(dirname "$0")
mkdir -p "$OUT"
# Line tables for the module libraries the bench builds too (same profile
# settings as the bench binary: no rebuild).
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
echo "load before: $(cat /proc/loadavg)" > "$OUT/$NAME.load"
MOLT_BENCH_SIDE=$SIDE MOLT_BENCH_ROWS="$ROWS" MOLT_BENCH_ROUNDS=$ROUNDS \
  perf record -F 999 -e cpu-clock --call-graph dwarf,8192 -o "$OUT/$NAME.data" "$BIN" > "$OUT/$NAME.out" 2>&1
echo "load after: $(cat /proc/loadavg)" >> "$OUT/$NAME.load"
perf script -i "$OUT/$NAME.data" -F comm,ip,sym,dso 2>/dev/null > "$OUT/$NAME.txt"
MSGS=$(( (ROUNDS + 1) * PER ))
python3 "$HERE/breakdown.py" "$OUT/$NAME.txt" 999 $MSGS "${CARGO_TARGET_DIR:-target}/release" -v > "$OUT/$NAME.breakdown"
rm -f "$OUT/$NAME.data"
