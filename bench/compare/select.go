package main

import (
	"fmt"
	"slices"
	"strings"
)

// Workload names (for -only and the report).
const (
	wProduce    = "produce"       // 1 KiB records, 4 partitions, 1 producer
	wConsume    = "consume"       // catch-up read of what produce wrote
	wE2E        = "e2e"           // end-to-end latency at 50% of produce's rate
	wE2EFixed   = "e2e-fixed"     // end-to-end latency at one fixed rate (-e2e-fixed-rate)
	wProduce100 = "produce-100b"  // 100 B records
	wProduce16  = "produce-16x64" // 16 producers, 64 partitions
	wRecovery   = "recovery"      // Fluxo: restart time of a node holding -recovery-bytes
	wIdle       = "idle"          // Fluxo: resident memory with idle partitions
	wMachine    = "machine"       // disk and loopback limits
)

var workloadNames = []string{wProduce, wConsume, wE2E, wE2EFixed, wProduce100, wProduce16, wRecovery, wIdle, wMachine}

// kafkaWorkloads run against every target (Kafka and JetStream).
var kafkaWorkloads = []string{wProduce, wConsume, wE2E, wE2EFixed, wProduce100, wProduce16}

func targetNames() []string {
	var out []string
	for _, t := range kafkaTargets {
		out = append(out, t.name)
	}
	for _, t := range jsTargets {
		out = append(out, t.name)
	}
	return out
}

// selection is what -only picked: nil maps select everything.
type selection struct {
	targets   map[string]bool
	workloads map[string]bool
}

// parseOnly reads -only: target names, the groups fluxo, kfake and
// jetstream (every target of that prefix), and workload names, mixed.
func parseOnly(only string) (selection, error) {
	var s selection
	for _, name := range strings.Split(only, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if slices.Contains(workloadNames, name) {
			if s.workloads == nil {
				s.workloads = map[string]bool{}
			}
			s.workloads[name] = true
			continue
		}
		matched := false
		for _, t := range targetNames() {
			if t == name || strings.HasPrefix(t, name+"-") {
				if s.targets == nil {
					s.targets = map[string]bool{}
				}
				s.targets[t], matched = true, true
			}
		}
		if !matched {
			return s, fmt.Errorf("-only: unknown name %q; targets: %s (or fluxo, kfake, jetstream); workloads: %s",
				name, strings.Join(targetNames(), ", "), strings.Join(workloadNames, ", "))
		}
	}
	return s, nil
}

func (s selection) target(name string) bool { return s.targets == nil || s.targets[name] }

func (s selection) workload(name string) bool { return s.workloads == nil || s.workloads[name] }

// fluxoSelected: the Fluxo-only workloads run unless -only names targets
// and none of them is Fluxo.
func (s selection) fluxoSelected() bool {
	if s.targets == nil {
		return true
	}
	for t := range s.targets {
		if strings.HasPrefix(t, "fluxo") {
			return true
		}
	}
	return false
}

func (s selection) anyKafkaWorkload() bool {
	for _, w := range kafkaWorkloads {
		if s.workload(w) {
			return true
		}
	}
	return false
}

// needsProduce: consume reads what produce wrote and e2e runs at half of
// produce's peak, so either brings produce along.
func (s selection) needsProduce() bool {
	return s.workload(wProduce) || s.workload(wConsume) || s.workload(wE2E)
}
