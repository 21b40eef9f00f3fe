package gateway

// DeleteRecords: versions 0-2.
//
// Each partition's log start offset moves up to the offset given (-1: the
// high watermark) through its partition actor, which records it durably and
// then drops the segments wholly below it. Partitions are served
// concurrently and each answers with its new low watermark. An offset past
// the high watermark (or below -1) is OFFSET_OUT_OF_RANGE; an offset at or
// below the current log start changes nothing and reports the current low
// watermark, as in Kafka. A partition that does not answer within
// timeout_ms is REQUEST_TIMED_OUT (the deletion may still happen).
// Skipped: nothing.

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(21, 0, 2, serveDeleteRecords) }

func serveDeleteRecords(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	node := c.server.node
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		*st = kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			sp := &st.Partitions[j]
			*sp = kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			if rp.Offset < -1 {
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := node.DeleteRecords(ctx, &fluxopb.DeleteRecordsRequest{Topic: rt.Topic, Partition: rp.Partition, Offset: rp.Offset})
				switch {
				case err != nil:
					sp.ErrorCode = kerr.RequestTimedOut.Code
				case res.ErrorCode != 0:
					sp.ErrorCode = int16(res.ErrorCode) // low watermark -1, as Kafka
				default:
					sp.LowWatermark = res.LowWatermark
				}
			}()
		}
	}
	wg.Wait()
	return resp, nil
}
