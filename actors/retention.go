package actors

import (
	"context"
	"time"

	"github.com/fluxo-broker/fluxo/persistence"
)

// retentionLoop applies retention.ms and retention.bytes every
// RetentionCheckInterval: whole segments are deleted by advancing the log
// start offset through the partition actor, the same path DeleteRecords takes.
func (n *Node) retentionLoop() {
	defer close(n.retentionDone)
	t := time.NewTicker(n.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stopRetention:
			return
		case <-t.C:
			n.RunRetention(context.Background())
		}
	}
}

// RunRetention applies retention to every partition once and returns how many
// partitions moved their log start.
func (n *Node) RunRetention(ctx context.Context) int {
	moved := 0
	now := n.cfg.Now().UnixMilli()
	for _, h := range n.registry.all() {
		t := n.cachedTopic(h.id.Topic)
		if t == nil {
			continue
		}
		log, err := h.view.currentLog()
		if err != nil {
			continue
		}
		s := n.topicConfig(t)
		start := h.view.logStart.Load()
		newStart := persistence.RetentionStart(log.Segments(), start, now, s.retentionMs, s.retentionBytes)
		if hw := h.view.hw.Load(); newStart > hw {
			newStart = hw
		}
		if newStart <= start {
			continue
		}
		res, err := n.request(ctx, h.pid, &advanceStartMsg{offset: newStart}, 0)
		if err != nil {
			n.logger.Warn("retention", "topic", h.id.Topic, "partition", h.id.Partition, "err", err)
			continue
		}
		if r, ok := res.(*checkpointReply); ok && r.err == nil {
			moved++
			n.logger.Info("retention advanced log start", "topic", h.id.Topic, "partition", h.id.Partition, "log_start", r.cp.LogStartOffset)
		} else if ok {
			n.logger.Warn("retention", "topic", h.id.Topic, "partition", h.id.Partition, "err", r.err)
		}
	}
	return moved
}
