#!/usr/bin/env bash
# Runs a 3-broker Fluxo cluster on this machine until Ctrl-C (task cluster).
# Builds bin/fluxo once, then starts three `fluxo serve` in the background:
#
#   broker  data dir    Kafka           cluster         remote          metrics
#   0       data/n0     127.0.0.1:9092  127.0.0.1:6222  127.0.0.1:7000  127.0.0.1:9644
#   1       data/n1     127.0.0.1:9093  127.0.0.1:6223  127.0.0.1:7001  127.0.0.1:9645
#   2       data/n2     127.0.0.1:9094  127.0.0.1:6224  127.0.0.1:7002  127.0.0.1:9646
#
# Logs go to data/n0.log, data/n1.log and data/n2.log (not inside the data dirs:
# their log/ holds the partition segments). Ctrl-C (or SIGTERM) stops the three
# by PID with SIGTERM: a controlled shutdown. Extra arguments go to every broker,
# e.g. scripts/cluster.sh --sync never.
set -euo pipefail
cd "$(dirname "$0")/.."

go build -o bin/fluxo ./cmd/fluxo
mkdir -p data
peers=127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224
pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping brokers ${pids[*]}"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "stopped"
}
trap stop INT TERM EXIT

for i in 0 1 2; do
  bin/fluxo serve --node-id "$i" --data-dir "data/n$i" \
    --listen "127.0.0.1:$((9092 + i))" --remote-listen "127.0.0.1:$((7000 + i))" \
    --metrics-listen "127.0.0.1:$((9644 + i))" \
    --cluster-listen "127.0.0.1:$((6222 + i))" --peers "$peers" --log-format text "$@" \
    2> "data/n$i.log" &
  pids+=($!)
  echo "broker $i: pid $!, Kafka 127.0.0.1:$((9092 + i)), log data/n$i.log"
done

# The brokers wait for each other (a majority forms the coordination store).
for _ in $(seq 1 600); do
  up=0
  for i in 0 1 2; do grep -q "fluxo broker started" "data/n$i.log" && up=$((up + 1)); done
  [ "$up" -eq 3 ] && break
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "broker pid $p exited; see data/n*.log" >&2; exit 1; }
  done
  sleep 0.1
done
[ "$up" -eq 3 ] || { echo "the brokers did not start in 60s; see data/n*.log" >&2; exit 1; }
echo "cluster up: kcat -L -b 127.0.0.1:9092   (Ctrl-C stops it)"
wait
