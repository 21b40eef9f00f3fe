#!/usr/bin/env bash
# Black-box smoke test: a real `fluxo serve` process and kcat (librdkafka).
# Produces lines (keyed and unkeyed), consumes them back from the beginning,
# lists metadata, and checks everything arrived in order.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/fluxo" ./cmd/fluxo
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
broker="127.0.0.1:$port"
mport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
metrics="127.0.0.1:$mport"
"$work/fluxo" serve --data-dir "$work/data" --listen "$broker" --remote-listen "" --metrics-listen "$metrics" --default-partitions 3 2> "$work/serve.log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "fluxo broker started" "$work/serve.log" && break
  sleep 0.1
done
grep -q "fluxo broker started" "$work/serve.log" || { cat "$work/serve.log"; exit 1; }

echo "-- kcat -L"
kcat -b "$broker" -L -t smoke | tee "$work/meta.txt"   # auto-creates the topic
grep -q 'topic "smoke" with 3 partitions' "$work/meta.txt"

echo "-- produce 300 lines to partition 1 and 30 keyed lines"
seq 1 300 | kcat -b "$broker" -P -t smoke -p 1 -X acks=all
for i in $(seq 1 30); do echo "k$((i % 3)):v$i"; done | kcat -b "$broker" -P -t smoke -K:

echo "-- consume partition 1 from the beginning"
kcat -b "$broker" -C -t smoke -p 1 -o beginning -c 300 -e -q > "$work/got.txt"
seq 1 300 | diff - "$work/got.txt"

echo "-- consume everything, keys included"
kcat -b "$broker" -C -t smoke -o beginning -e -q -f '%p %o %k=%s\n' > "$work/all.txt"
test "$(wc -l < "$work/all.txt")" -eq 330
# One key, one partition.
for k in k0 k1 k2; do
  test "$(grep " $k=" "$work/all.txt" | cut -d' ' -f1 | sort -u | wc -l)" -eq 1
done
head -3 "$work/all.txt"

echo "-- consumer group (kcat -G): read everything, commit on close"
timeout 60 kcat -b "$broker" -G smokers smoke -X auto.offset.reset=earliest -c 330 -q -f '%p %o %s\n' > "$work/group1.txt"
test "$(wc -l < "$work/group1.txt")" -eq 330
test "$(sort -u "$work/group1.txt" | wc -l)" -eq 330
echo "-- the same group resumes after its committed offsets"
for i in $(seq 1 5); do echo "late$i"; done | kcat -b "$broker" -P -t smoke -p 0
echo "-- metrics: the group lags by the 5 late lines; traffic counted"
curl -fsS "http://$metrics/readyz"
curl -fsS "http://$metrics/metrics" > "$work/metrics.txt"
grep -E '^fluxo_(consumer_group_lag|topic_(records|bytes)_(in|out)_total)' "$work/metrics.txt"
grep -qx 'fluxo_consumer_group_lag_sum{group="smokers"} 5' "$work/metrics.txt"
grep -qx 'fluxo_topic_records_in_total{topic="smoke"} 335' "$work/metrics.txt"
timeout 60 kcat -b "$broker" -G smokers smoke -X auto.offset.reset=earliest -c 5 -q -f '%s\n' > "$work/group2.txt"
printf 'late%s\n' 1 2 3 4 5 | diff - "$work/group2.txt"
echo "kcat smoke: ok"
