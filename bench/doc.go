// Package bench compares Fluxo with other brokers on this machine, through
// the same Kafka client (franz-go) and the same workloads. It holds only
// benchmarks: go test ./bench/ -run '^$' -bench . (see BENCHMARKS.md).
package bench
