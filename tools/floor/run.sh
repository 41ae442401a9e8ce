#!/bin/bash
# The client's kernel floor beside the server, at make bench's 50-subscriber point.
#   tools/floor/run.sh MODE [N] [GAP_US] [quickack0]      (MODE: sse | ndjson | ws | longpoll)
# Builds floor.c, starts `python -m servers` pinned to core 0, the floor reader and the minimal
# publisher (python -m clients.minimal pub: 200 msg/s of 64 B) pinned to core 1, and prints the
# CPU seconds (schedstat, every thread) of each over 8 s of steady state and client / server.
# The one-command comparison with the native engine is python -m duplexbench.floorbench.
# Run it alone on the machine (on a shared one: flock /tmp/cpu.lock tools/floor/run.sh sse).
set -euo pipefail
MODE=$1; N=${2:-50}; GAP=${3:-0}; QA=${4:-}
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
TMP=$(mktemp -d)
trap 'kill $SV $FL $PB 2>/dev/null || true; rm -rf "$TMP"' EXIT
cc -O2 -o "$TMP/floor" tools/floor/floor.c
TR=stream; [ "$MODE" = ws ] && TR=websocket; [ "$MODE" = longpoll ] && TR=longpoll
taskset -c 0 "$PY" -m servers --transport $TR --host 127.0.0.1 --port 0 --uvloop > "$TMP/srv" 2>&1 &
SV=$!
for _ in $(seq 100); do grep -q listening "$TMP/srv" && break; sleep 0.1; done
PORT=$(grep -o '127.0.0.1:[0-9]*' "$TMP/srv" | head -1 | cut -d: -f2)
taskset -c 1 "$TMP/floor" 127.0.0.1 "$PORT" t1 "$N" 14 "$MODE" "$GAP" $QA > "$TMP/floor.out" &
FL=$!
sleep 0.5
taskset -c 1 "$PY" -m clients.minimal pub "http://127.0.0.1:$PORT" t1 200 13 &
PB=$!
sleep 3
ns() { local t=0 a rest; for f in /proc/$1/task/*/schedstat; do read -r a rest < "$f"; t=$((t + a)); done; echo $t; }
s1=$(ns $SV); f1=$(ns $FL); p1=$(ns $PB)
sleep 8
s2=$(ns $SV); f2=$(ns $FL); p2=$(ns $PB)
wait $FL $PB
"$PY" - "$s1" "$s2" "$f1" "$f2" "$p1" "$p2" "$MODE" "$N" "$GAP" "${QA:-}" <<'PYEOF'
import sys
s1, s2, f1, f2, p1, p2 = map(int, sys.argv[1:7])
s, f, p = (s2 - s1) / 1e9, (f2 - f1) / 1e9, (p2 - p1) / 1e9
mode, n, gap, qa = sys.argv[7:11]
print(f"{mode} {n} subscribers gap={gap}us {qa}: server {s:.3f} s, floor reader {f:.3f} s, "
      f"publisher {p:.3f} s; reader/server {f / s:.2f}, (reader+publisher)/server {(f + p) / s:.2f}")
PYEOF
tail -1 "$TMP/floor.out"
