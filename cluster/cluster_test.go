package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// freeAddrs reserves n loopback ports for route listeners (routes need their
// addresses before any server starts, so port 0 cannot be used).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

// openCluster opens n stores forming one cluster, all at once (each waits
// for a majority of the others), and fails the test if one cannot. Closing
// them is the caller's.
func openCluster(t *testing.T, ctx context.Context, n int) (stores []*Store, dirs, addrs []string) {
	t.Helper()
	addrs = freeAddrs(t, n)
	stores, errs := make([]*Store, n), make([]error, n)
	for range n {
		dirs = append(dirs, t.TempDir())
	}
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(ctx, clusterOptions(dirs, addrs, i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	return stores, dirs, addrs
}

func clusterOptions(dirs, addrs []string, i int) Options {
	var peers []string
	for j, a := range addrs {
		if j != i {
			peers = append(peers, a)
		}
	}
	return Options{DataDir: dirs[i], NodeID: i, ClusterListen: addrs[i], Peers: peers, StartTimeout: 30 * time.Second}
}

// Three brokers' stores form one NATS cluster: a write through one is read
// through the others (through the stream leader), CAS conflicts are seen
// cluster-wide, and the bucket keeps serving when one broker is gone.
func TestThreeNodeCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stores, dirs, addrs := openCluster(t, ctx, 3)
	defer func() {
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
	}()
	info, err := stores[0].js.Stream(ctx, bucketStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := info.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("bucket replicas %d, want 3", r)
	}

	if err := stores[0].CreateTopic(ctx, topic("orders", 3)); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		got, _, err := s.GetTopic(ctx, "orders")
		if err != nil || got.Partitions != 3 {
			t.Fatalf("store %d reads %v, %v", i, got, err)
		}
	}
	if err := stores[2].CreateTopic(ctx, topic("orders", 1)); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create through another broker: %v, want ErrTopicExists", err)
	}

	// One broker goes; the other two still decide (after the bucket's
	// stream elects a new leader if it led it: several seconds).
	stores[0].Close()
	stores[0] = nil
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		err := stores[1].CreateTopic(ctx, topic(fmt.Sprintf("after-%d", i), 1))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted with 2 of 3 brokers: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var list []*fluxopb.TopicMetadata
	for {
		l, err := stores[2].ListTopics(ctx)
		if err == nil && len(l) >= 2 {
			list = l
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics after losing a broker: %v %v", l, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// It comes back and catches up.
	stores[0], err = Open(ctx, clusterOptions(dirs, addrs, 0))
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		got, err := stores[0].ListTopics(ctx)
		if err == nil && len(got) == len(list) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted broker sees %v, %v; want %d topics", got, err, len(list))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClusterOptionsValidated(t *testing.T) {
	for _, o := range []Options{
		{DataDir: "x", Peers: []string{"127.0.0.1:1"}},
		{DataDir: "x", ClusterListen: "127.0.0.1"},
		{DataDir: "x", ClusterListen: "127.0.0.1:0"},
		{DataDir: "x", ClusterListen: "127.0.0.1:4248", Peers: []string{"nohost"}},
	} {
		if err := o.validate(); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
}
