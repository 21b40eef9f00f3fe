package gateway

// Fetch: versions 4-16.
//
// Topics are named (v4-12) or given by topic id (v13+; an unknown id is
// UNKNOWN_TOPIC_ID). Records are the stored batches exactly as produced
// (compressed batches are served back compressed), whole batches only, never
// past the high watermark. Limits follow Kafka: each partition gets at most
// its partition_max_bytes and the response at most max_bytes, except that
// the first partition with data always gets its first whole batch (KIP-74);
// a later partition whose first batch does not fit gets no bytes this time.
// Below the log start or past the log end is OFFSET_OUT_OF_RANGE. The last
// stable offset is the high watermark (no transactions yet), and
// isolation_level is accepted with read_committed reading what
// read_uncommitted reads. current_leader_epoch (v9+) is checked (newer than
// ours: UNKNOWN_LEADER_EPOCH, older: FENCED_LEADER_EPOCH, -1: unchecked);
// last_fetched_epoch (v12+) is checked against the epoch history and a
// divergence is answered with diverging_epoch, as Kafka's leader does.
//
// The long poll holds the request until the records gathered reach
// min_bytes, max_wait_ms passes (capped at maxFetchWait), a partition has an
// error, or the connection closes (a fetch naming no partitions is answered
// at once, as in Kafka), waking whenever a requested partition's
// high watermark moves. Waiting and reading never involve the partition
// actors: reads go straight to the segments.
//
// Skipped: incremental fetch sessions (KIP-227): every answer has session id
// 0, so clients keep sending full fetches; a request naming a session we
// never created is FETCH_SESSION_ID_NOT_FOUND, forgotten_topics_data is
// ignored. Rack-aware fetch from followers (KIP-392: preferred read replica
// is always -1), the KIP-951 leader-discovery fields (current_leader, node
// endpoints), replica fetches (replica_id / replica_state; a single node has
// no followers), aborted transactions (always none), v17 (KIP-853 replica
// directory id).

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/internal/bufpool"
	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

func init() { register(1, 4, 16, serveFetch) }

// maxFetchWait caps a fetch's max_wait_ms, so a client asking for hours does
// not pin a goroutine that long. Clients ask for 500 ms (Java) to 5 s
// (franz-go).
const maxFetchWait = 30 * time.Second

// fetchTarget is one requested partition, resolved.
type fetchTarget struct {
	topic string // "" when the topic is unknown
	tIdx  int    // index of its topic in the response
	pIdx  int    // index in the topic's partitions
	req   *kmsg.FetchRequestTopicPartition
}

func serveFetch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	node := c.server.node

	switch {
	case req.SessionID != 0:
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		c.server.cfg.Observer.ErrorCode(1, resp.ErrorCode)
		return resp, nil
	case req.SessionEpoch != 0 && req.SessionEpoch != -1:
		resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
		c.server.cfg.Observer.ErrorCode(1, resp.ErrorCode)
		return resp, nil
	}

	// Resolve topics once; the response keeps the request's order.
	var targets []fetchTarget
	for i := range req.Topics {
		rt := &req.Topics[i]
		rtopic := kmsg.NewFetchResponseTopic()
		rtopic.Topic, rtopic.TopicID = rt.Topic, rt.TopicID
		name, unknown := rt.Topic, kerr.UnknownTopicOrPartition
		if req.Version >= 13 {
			unknown = kerr.UnknownTopicID
			name = ""
			if t := node.TopicByID(rt.TopicID); t != nil {
				name = t.Name
				rtopic.Topic = t.Name
			}
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = rp.Partition
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
			p.RecordBatches = []byte{}
			if name == "" {
				p.ErrorCode = unknown.Code
			}
			rtopic.Partitions = append(rtopic.Partitions, p)
			targets = append(targets, fetchTarget{topic: name, tIdx: i, pIdx: j, req: rp})
		}
		resp.Topics = append(resp.Topics, rtopic)
	}

	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	maxWait = min(max(maxWait, 0), maxFetchWait)
	deadline := time.Now().Add(maxWait)
	changed := make([]<-chan struct{}, 0, len(targets))
	for {
		changed = changed[:0]
		total, stop := fetchOnce(node, req, resp, targets, &changed)
		if stop || total >= int(req.MinBytes) || len(targets) == 0 || !time.Now().Before(deadline) {
			countFetch(c.server, resp)
			return resp, nil
		}
		if !actors.WaitAny(ctx, deadline, changed) && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// fetchOnce reads every target once into resp, replacing what an earlier
// pass put there. It returns the record bytes gathered and whether to answer
// at once (a partition has an error or a diverging epoch), and appends each
// readable partition's change channel to changed.
func fetchOnce(node *actors.Node, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, targets []fetchTarget, changed *[]<-chan struct{}) (total int, stop bool) {
	reads := readAhead(node, req, targets)
	remaining := int(req.MaxBytes)
	minOne := true
	for i, t := range targets {
		p := &resp.Topics[t.tIdx].Partitions[t.pIdx]
		if t.topic == "" {
			stop = true
			continue
		}
		rp := t.req
		limit := min(int(rp.PartitionMaxBytes), remaining)
		var r actors.PartitionRead
		if i < len(reads) {
			r = reads[i]
			r.Records = trimBatches(r.Records, limit, minOne)
		} else {
			r = node.ReadPartition(t.topic, rp.Partition, rp.FetchOffset, limit, minOne)
		}
		*changed = append(*changed, r.Changed)
		bufpool.Put(p.RecordBatches) // an earlier pass's read, not yet sent
		p.HighWatermark, p.LastStableOffset, p.LogStartOffset = r.HighWatermark, r.HighWatermark, r.LogStartOffset
		p.ErrorCode = 0
		p.RecordBatches = []byte{} // empty, not null, as Kafka sends
		err := r.Err
		if err == nil || err == kerr.OffsetOutOfRange {
			if req.Version >= 9 {
				if code := checkEpoch(rp.CurrentLeaderEpoch, r.LeaderEpoch); code != 0 {
					err = kerr.ErrorForCode(code)
				}
			}
			// Divergence comes before the offset check, as in Kafka: a
			// follower past our end must learn where to truncate.
			if err == r.Err && req.Version >= 12 && rp.LastFetchedEpoch >= 0 {
				if div, ok := divergence(node, t.topic, rp); ok {
					p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = div.LeaderEpoch, div.EndOffset
					bufpool.Put(r.Records)
					stop = true
					continue
				}
			}
		}
		if err != nil {
			p.ErrorCode = err.(*kerr.Error).Code
			bufpool.Put(r.Records)
			stop = true
			continue
		}
		if len(r.Records) > 0 {
			p.RecordBatches = r.Records
			total += len(r.Records)
			remaining -= len(r.Records)
			minOne = false
		}
	}
	return total, stop
}

// countFetch adds an answer's records to their partitions' bytes-out and
// records-out counters and counts its error codes.
func countFetch(s *Server, resp *kmsg.FetchResponse) {
	for i := range resp.Topics {
		t := &resp.Topics[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.ErrorCode != 0 {
				s.cfg.Observer.ErrorCode(1, p.ErrorCode)
			}
			s.node.CountFetched(t.Topic, p.Partition, p.RecordBatches)
		}
	}
}

// maxReadAhead bounds the reads of one fetch running at once.
const maxReadAhead = 4

// readAhead reads the leading targets side by side: a fetch's partitions are
// independent reads (from the page cache, mostly), and the client waits for
// the slowest sum of them. Only targets whose partition limits together fit
// the request's max_bytes are read ahead, so no read is wasted on a partition
// the answer has no room for; each read is then trimmed to what is left of
// the budget (trimBatches) exactly as a sequential read would have been cut.
// The rest are read one by one in fetchOnce.
func readAhead(node *actors.Node, req *kmsg.FetchRequest, targets []fetchTarget) []actors.PartitionRead {
	n, budget := 0, int(req.MaxBytes)
	for _, t := range targets {
		if budget -= int(t.req.PartitionMaxBytes); budget < 0 {
			break
		}
		n++
	}
	if n < 2 {
		return nil
	}
	reads := make([]actors.PartitionRead, n)
	var next atomic.Int32
	var wg sync.WaitGroup
	for range min(n, maxReadAhead) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				t := targets[i]
				if t.topic != "" {
					reads[i] = node.ReadPartition(t.topic, t.req.Partition, t.req.FetchOffset, int(t.req.PartitionMaxBytes), true)
				}
			}
		}()
	}
	wg.Wait()
	return reads
}

// trimBatches cuts records (whole batches) to at most limit bytes, keeping
// the first batch even if larger when minOne (KIP-74), as ReadPartition
// would have cut them given that limit. What is cut off goes back to the
// pool when nothing is kept.
func trimBatches(records []byte, limit int, minOne bool) []byte {
	if len(records) <= limit {
		return records
	}
	p := 0
	for p+recordbatch.HeaderSize <= len(records) {
		h, err := recordbatch.ParseHeader(records[p:])
		if err != nil || p+h.Size() > len(records) || p+h.Size() > limit && (p > 0 || !minOne) {
			break
		}
		p += h.Size()
	}
	if p == 0 {
		bufpool.Put(records)
		return nil
	}
	return records[:p]
}

// divergence checks a follower-style last_fetched_epoch: if that epoch ended
// before the fetch offset here (or we never had it), the client's log has
// diverged from ours and must truncate to the returned epoch end.
func divergence(node *actors.Node, topic string, rp *kmsg.FetchRequestTopicPartition) (actors.EpochEnd, bool) {
	end, err := node.EndOffsetForEpoch(topic, rp.Partition, rp.LastFetchedEpoch)
	if err != nil || end.EndOffset < 0 || end.LeaderEpoch < 0 {
		return end, false
	}
	if end.LeaderEpoch < rp.LastFetchedEpoch || end.EndOffset < rp.FetchOffset {
		return end, true
	}
	return end, false
}

// checkEpoch is the error code for a request's current_leader_epoch against
// the partition's, or 0 (see actors.CheckLeaderEpoch).
func checkEpoch(client, ours int32) int16 {
	if err := actors.CheckLeaderEpoch(client, ours); err != nil {
		return err.(*kerr.Error).Code
	}
	return 0
}
