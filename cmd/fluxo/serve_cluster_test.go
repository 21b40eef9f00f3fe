package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
)

// stablePorts picks n free loopback ports below the kernel's ephemeral range
// (32768 and up on Linux), so no port picked by the system (":0" listeners,
// outgoing connections) takes one between now and the brokers' binding it.
func stablePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for try := 0; len(out) < n; try++ {
		if try > 1000 {
			t.Fatal("no free ports in 20000-32767")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12768)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out
}

// clusterInfo runs `fluxo cluster info --format json`.
func clusterInfo(t *testing.T, brokers string) clusterDescription {
	t.Helper()
	r := ok(t, brokers, "", "cluster", "info", "--format", "json")
	var d clusterDescription
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("cluster info: %v\n%s", err, r.stdout)
	}
	return d
}

// TestCLITopicReplicationFactor: topic create passes --replication-factor
// (or --replicas) to the brokers, which place that many replicas.
func TestCLITopicReplicationFactor(t *testing.T) {
	c := testkit.StartCluster(t, 3, fluxo.WithoutFsync())
	brokers := c.SeedBrokers()
	r := ok(t, brokers, "", "topic", "create", "repl", "--partitions", "2", "--replication-factor", "3")
	mustRow(t, r.stdout, "repl", "2", "3", "created")
	r = ok(t, brokers, "", "topic", "create", "pair", "--partitions", "1", "--replicas", "2")
	mustRow(t, r.stdout, "pair", "1", "2", "created")
	fails(t, brokers, 1, "INVALID_REPLICATION_FACTOR", "topic", "create", "--replication-factor", "4", "quad")
	d := clusterInfo(t, brokers)
	want := map[string]int{"repl": 3, "pair": 2}
	n := 0
	for _, p := range d.Partitions {
		if w, ok := want[p.Topic]; ok {
			n++
			if len(p.Replicas) != w || p.Leader < 0 {
				t.Fatalf("%s-%d: leader %d, replicas %v; want %d replicas and a leader", p.Topic, p.Partition, p.Leader, p.Replicas, w)
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d partitions of repl and pair in %+v", n, d.Partitions)
	}
}

// TestServeCluster starts three `fluxo serve` processes configured by
// flags, the environment and a file: they form one cluster (Metadata lists
// the three brokers), replicate a topic three ways, and stop cleanly on
// SIGTERM.
func TestServeCluster(t *testing.T) {
	const n = 3
	ports := stablePorts(t, 2*n)
	routes, kafka := ports[:n], ports[n:]
	peers := strings.Join(routes, ",") // each broker skips its own address
	procs := make([]*serverProc, n)
	for i := range n {
		args := []string{"--data-dir", t.TempDir(), "--listen", kafka[i], "--remote-listen", "127.0.0.1:0",
			"--node-id", fmt.Sprint(i), "--cluster-listen", routes[i]}
		var env []string
		switch i {
		case 0:
			args = append(args, "--peers", peers)
		case 1:
			env = []string{"FLUXO_PEERS=" + peers}
		case 2:
			args = append(args, "--config", writeConfigFile(t, "peers:\n  - "+strings.Join(routes, "\n  - ")+"\n"))
		}
		procs[i] = spawnServe(t, env, args...)
	}
	for i, p := range procs {
		p.waitStarted(t)
		out := p.stderr.String()
		if !strings.Contains(out, "fluxo broker started") {
			t.Fatalf("broker %d did not start:\n%s", i, out)
		}
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		for _, want := range []string{fmt.Sprintf(`"node_id":%d`, i), `"cluster_listen":"` + routes[i] + `"`, `"peers":"` + strings.Join(others, ",") + `"`} {
			if !strings.Contains(out, want) {
				t.Fatalf("broker %d: no %s in the start line:\n%s", i, want, out)
			}
		}
	}
	brokers := strings.Join(kafka, ",")
	deadline := time.Now().Add(30 * time.Second)
	for d := clusterInfo(t, kafka[0]); len(d.Brokers) != n; d = clusterInfo(t, kafka[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("Metadata lists %d brokers, want %d: %+v", len(d.Brokers), n, d.Brokers)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := ok(t, brokers, "", "topic", "create", "orders", "--partitions", "3", "--replication-factor", "3")
	mustRow(t, r.stdout, "orders", "3", "3", "created")
	if r := fluxoRun(t, brokers, "a\nb\nc\n", "produce", "orders", "--partition", "1"); r.code != 0 {
		for i, p := range procs {
			t.Logf("broker %d:\n%s", i, p.stderr)
		}
		t.Fatalf("produce: %s", r)
	}
	r = ok(t, kafka[2], "", "consume", "orders", "--partition", "1", "-e")
	if got := strings.Fields(r.stdout); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("consumed %q", r.stdout)
	}

	var wg sync.WaitGroup
	codes := make([]int, n)
	for i, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-p.done:
				codes[i] = p.cmd.ProcessState.ExitCode()
			case <-time.After(45 * time.Second):
				codes[i] = -1
			}
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != 0 {
			t.Fatalf("broker %d: exit %d after SIGTERM:\n%s", i, code, procs[i].stderr)
		}
	}
}
