#!/usr/bin/env bash
# Black-box cluster test: three real `fluxo serve` processes on loopback form a
# cluster, a topic is replicated three ways, a producer (.ci/ackprod, acks=all,
# idempotent) writes sequential values to one partition and records every
# acknowledged one, the partition's leader is killed with SIGKILL mid-way,
# and afterwards every acknowledged value must be consumable from the
# survivors. Reports the acked, consumed and duplicate counts and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
work="$(mktemp -d)"
pids=()
prod=""
cleanup() {
  [ -n "$prod" ] && kill -KILL "$prod" 2>/dev/null
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "$prod" ] && { wait "$prod" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "cluster smoke: FAIL: $*" >&2
  for i in 0 1 2; do echo "--- broker $i log (tail)" >&2; tail -20 "$work/n$i.log" >&2 || true; done
  exit 1
}
elapsed() { echo "$((SECONDS - t0))s"; }

go build -o "$work/fluxo" ./cmd/fluxo
go build -o "$work/ackprod" ./.ci/ackprod
echo "-- built fluxo and ackprod in $(elapsed)"

# Nine free loopback ports below the ephemeral range (32768+), so nothing the
# system hands out (outgoing connections, :0 listeners) takes one meanwhile.
read -r -a ports <<< "$(python3 - <<'PY'
import random, socket
out, socks = [], []
while len(out) < 9:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randint(20000, 32000)))
    except OSError:
        s.close(); continue
    socks.append(s); out.append(s.getsockname()[1])
print(" ".join(map(str, out)))
PY
)"
kafka=() routes=() remotes=()
for i in 0 1 2; do
  kafka+=("127.0.0.1:${ports[i]}"); routes+=("127.0.0.1:${ports[i+3]}"); remotes+=("127.0.0.1:${ports[i+6]}")
done
peers="$(IFS=,; echo "${routes[*]}")"
brokers="$(IFS=,; echo "${kafka[*]}")"

for i in 0 1 2; do
  "$work/fluxo" serve --node-id "$i" --data-dir "$work/n$i" --listen "${kafka[i]}" \
    --remote-listen "${remotes[i]}" --metrics-listen "" \
    --cluster-listen "${routes[i]}" --peers "$peers" --log-format json 2> "$work/n$i.log" &
  pids+=($!)
done
echo "-- started brokers ${pids[*]} (Kafka $brokers)"

echo "-- waiting for Metadata to list 3 brokers"
for _ in $(seq 1 300); do
  n="$(kcat -L -b "${kafka[0]}" -m 2 2>/dev/null | grep -c '^  broker ' || true)"
  [ "$n" = 3 ] && break
  sleep 0.2
done
[ "$n" = 3 ] || fail "Metadata lists ${n:-0} brokers after 60s"
kcat -L -b "${kafka[0]}" | head -5
echo "   cluster up at $(elapsed)"

"$work/fluxo" topic create acks --partitions 1 --replication-factor 3 --brokers "$brokers"
leader_of() {
  "$work/fluxo" cluster info --format json --brokers "$brokers" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(next(p["leader"] for p in d["partitions"] if p["topic"] == "acks" and p["partition"] == 0))'
}
for _ in $(seq 1 100); do
  leader="$(leader_of 2>/dev/null || echo -1)"
  [ "$leader" -ge 0 ] && break
  sleep 0.2
done
[ "$leader" -ge 0 ] || fail "acks-0 has no leader"
kcat -L -b "$brokers" -t acks | tail -1

echo "-- producing for 14s (acks=all); killing the leader, broker $leader, after 4s"
"$work/ackprod" --brokers "$brokers" --topic acks --partition 0 --duration 14s --rate 1000 --out "$work/acked.txt" > "$work/ackprod.txt" 2>&1 &
prod=$!
sleep 4
before="$(wc -l < "$work/acked.txt")"
kill -KILL "${pids[leader]}"
killed_at=$SECONDS
echo "   kill -9 ${pids[leader]} (broker $leader) at $(elapsed), ~$before values acked so far"
survivor=$(( (leader + 1) % 3 ))
for _ in $(seq 1 150); do
  now="$(leader_of 2>/dev/null || echo -1)"
  [ "$now" -ge 0 ] && [ "$now" != "$leader" ] && break
  sleep 0.2
done
[ "$now" -ge 0 ] && [ "$now" != "$leader" ] || fail "no new leader for acks-0 after 30s"
echo "   new leader: broker $now, $((SECONDS - killed_at))s after the kill"
wait "$prod" || fail "ackprod failed: $(cat "$work/ackprod.txt")"
prod=""
cat "$work/ackprod.txt"
kcat -L -b "${kafka[survivor]}" -t acks | tail -1

echo "-- consuming acks-0 from the beginning (broker $survivor)"
kcat -C -b "${kafka[survivor]}" -t acks -p 0 -o beginning -e -q -f '%s\n' > "$work/consumed.txt"
acked="$(wc -l < "$work/acked.txt")"
consumed="$(wc -l < "$work/consumed.txt")"
sort -u "$work/consumed.txt" > "$work/consumed.set"
dups=$(( consumed - $(wc -l < "$work/consumed.set") ))
sort -u "$work/acked.txt" > "$work/acked.set"
missing="$(comm -23 "$work/acked.set" "$work/consumed.set" | wc -l)"
echo "   acked $acked, consumed $consumed, duplicates $dups, acked but missing $missing"
if [ "$missing" -ne 0 ]; then
  comm -23 "$work/acked.set" "$work/consumed.set" | sort -n | head -20 >&2
  fail "$missing acknowledged values were not consumed"
fi
[ "$acked" -gt "$before" ] || fail "nothing was acknowledged after the kill"
echo "cluster smoke: ok in $(elapsed)"
