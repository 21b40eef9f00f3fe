package testkit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/testkit/history"
)

// GroupWorkload runs consumer-group members and an offset reader against a
// topic, recording assignments, polls (under the generation they were
// assigned in), commits and fetched commits: the history the checker's
// poll, double-assignment and lost-commit families need.
type GroupWorkload struct {
	Topic, Group string
	// Members is the number of group members (default 2); process ids
	// start at FirstProcess.
	Members, FirstProcess int
	Seeds                 func() []string
	H                     *history.History

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start starts the members and the offset reader.
func (g *GroupWorkload) Start(ctx context.Context) error {
	if g.Members == 0 {
		g.Members = 2
	}
	g.stop = make(chan struct{})
	for i := range g.Members {
		g.wg.Add(1)
		go g.member(ctx, g.FirstProcess+i)
	}
	g.wg.Add(1)
	go g.reader(ctx, g.FirstProcess+g.Members)
	return nil
}

// Stop ends the members and the reader.
func (g *GroupWorkload) Stop() {
	close(g.stop)
	g.wg.Wait()
}

func (g *GroupWorkload) stopped() bool {
	select {
	case <-g.stop:
		return true
	default:
		return false
	}
}

// member is one group member: it records each assignment it is given, its
// polls under that generation, and a synchronous commit after each poll.
func (g *GroupWorkload) member(ctx context.Context, proc int) {
	defer g.wg.Done()
	var mu sync.Mutex
	gen := int32(-1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.Seeds()...),
		kgo.ConsumerGroup(g.Group), kgo.ConsumeTopics(g.Topic),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
			_, generation := cl.GroupMetadata()
			var owned []history.TopicPartition
			for t, parts := range ps {
				for _, p := range parts {
					owned = append(owned, history.TopicPartition{Topic: t, Partition: p})
				}
			}
			id := g.H.Invoke(proc, history.Op{Kind: history.Assign, Group: g.Group, Generation: generation, Partitions: owned})
			g.H.Ok(id, history.Result{})
			mu.Lock()
			gen = generation
			mu.Unlock()
		}),
	)
	if err != nil {
		return
	}
	defer cl.Close()
	for !g.stopped() {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		mu.Lock()
		epoch := gen
		mu.Unlock()
		recordPolls(g.H, proc, fs, int64(epoch))
		offsets := cl.UncommittedOffsets()
		if len(offsets) == 0 {
			continue
		}
		_, generation := cl.GroupMetadata()
		var ids []history.OpID
		var tps []history.TopicPartition
		for t, ps := range offsets {
			for p, o := range ps {
				ids = append(ids, g.H.Invoke(proc, history.Op{Kind: history.Commit, Group: g.Group, Generation: generation, Topic: t, Partition: p, Offset: o.Offset}))
				tps = append(tps, history.TopicPartition{Topic: t, Partition: p})
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var perr map[history.TopicPartition]error
		cl.CommitOffsetsSync(cctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			perr = map[history.TopicPartition]error{}
			if err != nil {
				for _, tp := range tps {
					perr[tp] = err
				}
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
						perr[history.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = e
					}
				}
			}
		})
		cancel()
		for i, id := range ids {
			err, failed := perr[tps[i]]
			switch {
			case perr != nil && !failed:
				g.H.Ok(id, history.Result{})
			case errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.RebalanceInProgress):
				g.H.Fail(id, err) // refused by the coordinator: not written
			default:
				g.H.Info(id, err)
			}
		}
	}
}

// reader fetches the group's committed offsets now and then.
func (g *GroupWorkload) reader(ctx context.Context, proc int) {
	defer g.wg.Done()
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.Seeds()...))
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for !g.stopped() {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		ends, err := adm.ListEndOffsets(ctx, g.Topic)
		if err != nil {
			continue
		}
		var ids []history.OpID
		var tps []history.TopicPartition
		ends.Each(func(o kadm.ListedOffset) {
			ids = append(ids, g.H.Invoke(proc, history.Op{Kind: history.FetchCommit, Group: g.Group, Topic: o.Topic, Partition: o.Partition}))
			tps = append(tps, history.TopicPartition{Topic: o.Topic, Partition: o.Partition})
		})
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := adm.FetchOffsets(fctx, g.Group)
		cancel()
		for i, id := range ids {
			if err != nil || res.Error() != nil {
				g.H.Info(id, errors.Join(err, res.Error()))
				continue
			}
			off := history.NoOffset
			if o, ok := res.Lookup(tps[i].Topic, tps[i].Partition); ok && o.Err == nil && o.At >= 0 {
				off = o.At
			}
			g.H.Ok(id, history.Result{Offset: off})
		}
	}
}
