package testkit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo/testkit/history"
)

// Workload runs franz-go producers (acks=all, idempotent) and a consumer
// against a cluster while faults are injected, recording every operation in
// a history for the checker: each record's value is unique, each send is
// invoked before it is produced and completed from its promise, each poll
// records the offsets and values it returned.
type Workload struct {
	// Topic and Partitions to write; the topic must exist.
	Topic      string
	Partitions int32
	// Producers is the number of producer clients (default 2), each with
	// at most InFlight records outstanding (default 64).
	Producers, InFlight int
	// Seeds returns the brokers to bootstrap from (called per client).
	Seeds func() []string

	H *history.History

	acked, failed, unknown atomic.Int64
	stop                   chan struct{}
	wg                     sync.WaitGroup
	consumeErr             error
}

// Start begins producing and consuming until Stop.
func (w *Workload) Start(ctx context.Context) error {
	if w.Producers == 0 {
		w.Producers = 2
	}
	if w.InFlight == 0 {
		w.InFlight = 64
	}
	if w.H == nil {
		w.H = history.New()
	}
	w.stop = make(chan struct{})
	for p := range w.Producers {
		cl, err := kgo.NewClient(kgo.SeedBrokers(w.Seeds()...),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RecordDeliveryTimeout(60*time.Second),
			kgo.ProducerLinger(0))
		if err != nil {
			return err
		}
		w.wg.Add(1)
		go w.produce(ctx, p, cl)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(w.Seeds()...), kgo.ConsumePartitions(w.fromStart()))
	if err != nil {
		return err
	}
	w.wg.Add(1)
	go w.consume(ctx, w.Producers, cons)
	return nil
}

func (w *Workload) fromStart() map[string]map[int32]kgo.Offset {
	ps := map[int32]kgo.Offset{}
	for p := range w.Partitions {
		ps[p] = kgo.NewOffset().AtStart()
	}
	return map[string]map[int32]kgo.Offset{w.Topic: ps}
}

func (w *Workload) produce(ctx context.Context, proc int, cl *kgo.Client) {
	defer w.wg.Done()
	defer cl.Close()
	sem := make(chan struct{}, w.InFlight)
	var pending sync.WaitGroup
	defer pending.Wait()
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		part := int32(n) % w.Partitions
		val := fmt.Sprintf("p%d-%d", proc, n)
		id := w.H.Invoke(proc, history.Op{Kind: history.Send, Topic: w.Topic, Partition: part, Value: val})
		pending.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: w.Topic, Partition: part, Value: []byte(val)}, func(r *kgo.Record, err error) {
			defer pending.Done()
			defer func() { <-sem }()
			switch {
			case err == nil:
				w.acked.Add(1)
				w.H.Ok(id, history.Result{Offset: r.Offset})
			case errors.Is(err, kerr.NotEnoughReplicas), errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.InvalidRecord):
				// Refused before anything was appended.
				w.failed.Add(1)
				w.H.Fail(id, err)
			default:
				w.unknown.Add(1)
				w.H.Info(id, err)
			}
		})
	}
}

func (w *Workload) consume(ctx context.Context, proc int, cl *kgo.Client) {
	defer w.wg.Done()
	defer cl.Close()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		recordPolls(w.H, proc, fs, 0)
	}
}

// Stop ends the clients, waiting for every outstanding send to complete.
func (w *Workload) Stop() {
	close(w.stop)
	w.wg.Wait()
}

// Counts reports the sends acknowledged, refused and of unknown outcome.
func (w *Workload) Counts() (acked, failed, unknown int64) {
	return w.acked.Load(), w.failed.Load(), w.unknown.Load()
}

// Drain reads every partition from its start to its end with a fresh
// client and records it in the history (call it after healing).
func (w *Workload) Drain(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.Seeds()...), kgo.ConsumePartitions(w.fromStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, w.Topic)
	if err != nil {
		return err
	}
	want := map[int32]int64{}
	var endErr error
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		if o.Err != nil {
			endErr = fmt.Errorf("drain: end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
		}
	})
	if endErr != nil {
		return endErr
	}
	if len(want) != int(w.Partitions) {
		return fmt.Errorf("drain: end offsets of %d partitions, want %d", len(want), w.Partitions)
	}
	got := map[int32][]history.Record{}
	done := func() bool {
		for p, end := range want {
			if n := len(got[p]); end > 0 && (n == 0 || got[p][n-1].Offset < end-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("drain: %w (ends %v)", ctx.Err(), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], history.Record{Offset: r.Offset, Value: string(r.Value)})
		})
	}
	for p := range w.Partitions {
		w.H.Drain(w.Topic, p, got[p])
	}
	return nil
}

// recordPolls records each partition's records of one poll as a Poll by
// proc under the assignment epoch.
func recordPolls(h *history.History, proc int, fs kgo.Fetches, epoch int64) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		recs := make([]history.Record, len(p.Records))
		for i, r := range p.Records {
			recs[i] = history.Record{Offset: r.Offset, Value: string(r.Value)}
		}
		id := h.Invoke(proc, history.Op{Kind: history.Poll, Topic: p.Topic, Partition: p.Partition, Epoch: epoch})
		h.Ok(id, history.Result{Records: recs})
	})
}
