package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
	"github.com/fluxo-broker/fluxo/testkit/history"
)

// TestClusterUserServiceExample is how a user tests their own service against Fluxo
// under faults. The service here is a tiny billing job: it consumes "orders"
// in the consumer group "billing", writes one invoice per order to
// "invoices" with an idempotent acks=all producer, and commits an order's
// offset only after its invoice is acknowledged.
//
// The recipe:
//  1. Start an in-process cluster with a testkit.PanicInjector installed.
//  2. Run the service, and a load generator, against c.Addrs().
//  3. Inject faults: panics in partition actors, a leader killed and restarted.
//  4. Heal, let the service catch up, stop it.
//  5. Drain the topics into a history.History and assert two things:
//     history.Check finds nothing (no acknowledged write lost, no offset with
//     two values...), and the service's own invariant holds.
//
// Every send is recorded: Invoke before producing, then Ok with the
// acknowledged offset, Fail if the broker refused it before appending, or
// Info if the outcome is unknown (it may or may not have been written).
func TestClusterUserServiceExample(t *testing.T) {
	const parts = 2
	inj := &testkit.PanicInjector{}
	c := testkit.StartCluster(t, 3, fluxo.WithActorMiddleware(inj.Middleware))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if rs, err := adm.CreateTopics(ctx, parts, 3, nil, "orders", "invoices"); err != nil || rs.Error() != nil {
		t.Fatal(errors.Join(err, rs.Error()))
	}

	h := history.New()
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// The load generator: order-N goes to partition N%parts (process 0).
	orders := newProducer(t, c)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			send(ctx, h, 0, orders, "orders", int32(n%parts), fmt.Sprintf("order-%d", n))
		}
	}()

	// Two instances of the service, as in production (processes 1 and 2).
	svcStop := make(chan struct{})
	var svcWG sync.WaitGroup
	var invoiceSeq atomic.Int64
	for proc := 1; proc <= 2; proc++ {
		cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
			kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders"),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		prod := newProducer(t, c)
		svcWG.Add(1)
		go func() {
			defer svcWG.Done()
			defer cons.Close()
			defer prod.Close()
			runBilling(ctx, h, proc, cons, prod, &invoiceSeq, svcStop)
		}()
	}

	// Faults. Partition actor ids end with "/<topic>-<partition>": the next
	// three messages to an orders-0 actor (on any replica), and the next three
	// to an invoices-1 actor, panic; the supervisor restarts the actor.
	time.Sleep(2 * time.Second)
	inj.Arm("/orders-0", 3, nil)
	inj.Arm("/invoices-1", 3, nil)
	time.Sleep(2 * time.Second)

	// Kill the leader of invoices-0 (as kill -9 would), wait for another
	// replica to take over, then bring it back on its data directory.
	l := c.Leader("invoices", 0)
	c.Kill(int(l))
	if _, err := c.WaitLeader("invoices", 0, l, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	c.Restart(int(l))
	c.WaitAlive(3, 30*time.Second)
	time.Sleep(2 * time.Second)
	inj.Disarm()
	t.Logf("faults: %d panics injected, broker %d killed and restarted", inj.Injected(), l)
	if inj.Injected() == 0 {
		t.Error("no panic was injected")
	}

	// Heal done: stop the orders, wait until "billing" has committed every
	// order, stop the service.
	close(stop)
	wg.Wait()
	orders.Close()
	for !caughtUp(ctx, adm) {
		if ctx.Err() != nil {
			t.Fatal("the service did not catch up")
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(svcStop)
	svcWG.Wait()

	// The final drain: a fresh consumer reads both topics to their end.
	// testkit.Workload's Drain does that and records it in h.
	for _, topic := range []string{"orders", "invoices"} {
		w := &testkit.Workload{Topic: topic, Partitions: parts, Seeds: c.Addrs, H: h}
		if err := w.Drain(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// 1. The broker's guarantees: nothing acknowledged is lost, no offset
	// holds two values, no value is at two offsets (every send in this test
	// has a unique value, even a retried invoice).
	if rep := history.Check(h); rep.Failures() > 0 {
		t.Fatalf("history check failed:\n%s", rep)
	}

	// 2. The service's own invariant: every order that made it into "orders"
	// has at least one invoice. The service is at-least-once (it commits
	// after writing, so a crash, a rebalance or a retried send between the
	// write and the commit writes an invoice again): duplicates are allowed,
	// a missing invoice is not. An exactly-once service (transactions) would
	// assert exactly one here.
	drains := h.Drains()
	invoices := map[string]int{} // order -> invoices
	for p := range int32(parts) {
		for _, r := range drains[history.TopicPartition{Topic: "invoices", Partition: p}] {
			_, order, _ := strings.Cut(r.Value, " for ")
			invoices[order]++
		}
	}
	nOrders, dups := 0, 0
	for p := range int32(parts) {
		for _, r := range drains[history.TopicPartition{Topic: "orders", Partition: p}] {
			nOrders++
			if invoices[r.Value] == 0 {
				t.Errorf("%s (orders/%d@%d) has no invoice", r.Value, p, r.Offset)
			} else if invoices[r.Value] > 1 {
				dups++
			}
		}
	}
	if nOrders == 0 {
		t.Fatal("no order was written")
	}
	t.Logf("%d orders, %d invoiced more than once (at-least-once)", nOrders, dups)
}

// runBilling is the user's service: poll orders, write an invoice for each,
// commit. The consumer has auto-commit off and BlockRebalanceOnPoll, so no
// rebalance happens between a poll and its commit.
func runBilling(ctx context.Context, h *history.History, proc int, cons, prod *kgo.Client, seq *atomic.Int64, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := cons.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			// Retry until acknowledged; each attempt gets a new unique value
			// (the history identifies records by value).
			for ctx.Err() == nil {
				v := fmt.Sprintf("invoice-%d for %s", seq.Add(1), r.Value)
				if send(ctx, h, proc, prod, "invoices", r.Partition, v) == nil {
					break
				}
			}
		})
		// A failed commit only means the orders are redelivered (more
		// duplicates), never that an invoice is missing.
		_ = cons.CommitUncommittedOffsets(ctx)
		cons.AllowRebalance()
	}
}

// newProducer is an idempotent acks=all producer that picks partitions
// itself, so that each send is recorded with its partition.
func newProducer(t *testing.T, c *testkit.Cluster) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// send produces one record synchronously and records it in h.
func send(ctx context.Context, h *history.History, proc int, cl *kgo.Client, topic string, p int32, value string) error {
	id := h.Invoke(proc, history.Op{Kind: history.Send, Topic: topic, Partition: p, Value: value})
	r, err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(value)}).First()
	switch {
	case err == nil:
		h.Ok(id, history.Result{Offset: r.Offset})
	case errors.Is(err, kerr.NotEnoughReplicas):
		h.Fail(id, err) // refused before anything was appended
	default:
		h.Info(id, err) // may or may not have been written
	}
	return err
}

// caughtUp reports whether "billing" has committed up to the end of every
// partition of "orders".
func caughtUp(ctx context.Context, adm *kadm.Client) bool {
	ends, err1 := adm.ListEndOffsets(ctx, "orders")
	committed, err2 := adm.FetchOffsets(ctx, "billing")
	done := err1 == nil && err2 == nil
	ends.Each(func(o kadm.ListedOffset) {
		if cm, ok := committed.Lookup(o.Topic, o.Partition); o.Err != nil || !ok || cm.At < o.Offset {
			done = false
		}
	})
	return done
}
