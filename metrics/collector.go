package metrics

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fluxo-broker/fluxo/actors/group"
)

// nodeCollector reads the node at scrape time: everything here is computed
// from state the node publishes anyway (partition views, the group index,
// restart counts, Pebble's own metrics), so there is no polling loop.
type nodeCollector struct{ m *Metrics }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	descBytesIn    = desc("topic_bytes_in_total", "Record batch bytes appended to the topic's partitions on this node since they were opened.", "topic")
	descRecordsIn  = desc("topic_records_in_total", "Records appended to the topic's partitions on this node since they were opened.", "topic")
	descBytesOut   = desc("topic_bytes_out_total", "Record batch bytes sent to consumers from the topic's partitions since they were opened.", "topic")
	descRecordsOut = desc("topic_records_out_total", "Records sent to consumers from the topic's partitions since they were opened (whole batches, so a batch starting before the fetch offset counts in full).", "topic")

	descTopics          = desc("topics", "Topics (internal ones excluded).")
	descPartitions      = desc("partitions", "Partitions hosted by this node.")
	descUnderReplicated = desc("under_replicated_partitions", "Hosted partitions with fewer in-sync replicas than their topic's replication factor.")
	descLogStart        = desc("partition_log_start_offset", "First offset still stored in the partition.", "topic", "partition")
	descLogEnd          = desc("partition_log_end_offset", "Offset the partition's next record will get.", "topic", "partition")
	descHW              = desc("partition_high_watermark", "Offsets below it are durable and readable by consumers.", "topic", "partition")
	descSize            = desc("partition_size_bytes", "Segment bytes of the partition on disk.", "topic", "partition")

	descGroups        = desc("consumer_groups", "Consumer groups, by state.", "state")
	descGroupMembers  = desc("consumer_group_members", "Members of the consumer group.", "group")
	descGroupOffset   = desc("consumer_group_committed_offset", "The group's committed offset for the partition.", "group", "topic", "partition")
	descGroupLag      = desc("consumer_group_lag", "The partition's high watermark minus the group's committed offset (at least 0).", "group", "topic", "partition")
	descGroupLagSum   = desc("consumer_group_lag_sum", "The group's lag summed over the partitions it has committed offsets for.", "group")
	descActorRestarts = desc("actor_restarts_total", "Actor restarts by supervisors since the node started, by kind of actor.", "kind")

	descSegmentSyncs   = desc("segment_syncs_total", "Segment fdatasyncs (group-commit rounds, per segment) since the node started.")
	descPebbleDisk     = desc("pebble_disk_usage_bytes", "Disk space used by Pebble (tables, WAL, obsolete and zombie files).")
	descPebbleCompact  = desc("pebble_compactions_total", "Pebble compactions since the store was opened.")
	descPebbleDebt     = desc("pebble_compaction_debt_bytes", "Pebble's estimate of the bytes to compact to reach a stable LSM.")
	descPebbleFlushes  = desc("pebble_flushes_total", "Pebble memtable flushes since the store was opened.")
	descPebbleReadAmp  = desc("pebble_read_amplification", "Pebble's read amplification (sublevels plus non-empty levels).")
	descPebbleWALSyncs = desc("pebble_wal_syncs_total", "Pebble WAL fsyncs since the store was opened.")
	descPebbleWALBytes = desc("pebble_wal_bytes_written_total", "Bytes written to Pebble's WAL since the store was opened.")
	descPebbleWALFiles = desc("pebble_wal_files", "Live Pebble WAL files.")
)

var allDescs = []*prometheus.Desc{
	descBytesIn, descRecordsIn, descBytesOut, descRecordsOut,
	descTopics, descPartitions, descUnderReplicated, descLogStart, descLogEnd, descHW, descSize,
	descGroups, descGroupMembers, descGroupOffset, descGroupLag, descGroupLagSum, descActorRestarts,
	descSegmentSyncs, descPebbleDisk, descPebbleCompact, descPebbleDebt, descPebbleFlushes, descPebbleReadAmp,
	descPebbleWALSyncs, descPebbleWALBytes, descPebbleWALFiles,
}

var groupStates = []group.State{group.Empty, group.PreparingRebalance, group.CompletingRebalance, group.Stable, group.Dead}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.m.node.Load()
	if n == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}

	// Topics and partitions.
	topics, _ := n.ListTopics(context.Background())
	replication := make(map[string]int32, len(topics))
	for _, t := range topics {
		replication[t.Name] = t.ReplicationFactor
	}
	gauge(descTopics, float64(len(topics)))
	stats := n.PartitionStats()
	type traffic struct{ bytesIn, recordsIn, bytesOut, recordsOut int64 }
	perTopic := map[string]*traffic{}
	var order []string
	underReplicated := 0
	for i := range stats {
		s := &stats[i]
		p := strconv.Itoa(int(s.Partition))
		gauge(descLogStart, float64(s.LogStartOffset), s.Topic, p)
		gauge(descLogEnd, float64(s.LogEndOffset), s.Topic, p)
		gauge(descHW, float64(s.HighWatermark), s.Topic, p)
		gauge(descSize, float64(s.SizeBytes), s.Topic, p)
		// In a cluster the leader reports it (as Kafka's
		// UnderReplicatedPartitions): fewer in-sync replicas than
		// replicas. A single node holds one replica of each partition,
		// always in sync: under-replicated when its topic asks for more.
		if n.Clustered() {
			if l, ok := n.PartitionLeadership(s.Topic, s.Partition); ok && l.Leader == n.NodeID() && len(l.ISR) < len(l.Replicas) {
				underReplicated++
			}
		} else if replication[s.Topic] > 1 {
			underReplicated++
		}
		t := perTopic[s.Topic]
		if t == nil {
			t = &traffic{}
			perTopic[s.Topic] = t
			order = append(order, s.Topic)
		}
		t.bytesIn += s.BytesIn
		t.recordsIn += s.RecordsIn
		t.bytesOut += s.BytesOut
		t.recordsOut += s.RecordsOut
	}
	gauge(descPartitions, float64(len(stats)))
	gauge(descUnderReplicated, float64(underReplicated))
	for _, name := range order {
		t := perTopic[name]
		counter(descBytesIn, float64(t.bytesIn), name)
		counter(descRecordsIn, float64(t.recordsIn), name)
		counter(descBytesOut, float64(t.bytesOut), name)
		counter(descRecordsOut, float64(t.recordsOut), name)
	}

	// Consumer groups and their lag.
	byState := map[string]int{}
	for _, g := range n.ListGroups() {
		byState[g.State]++
		gauge(descGroupMembers, float64(g.Members), g.Group)
		lags, ok := n.GroupLag(g.Group)
		if !ok {
			continue
		}
		var sum int64
		for _, l := range lags {
			p := strconv.Itoa(int(l.Partition))
			gauge(descGroupOffset, float64(l.Committed), g.Group, l.Topic, p)
			if l.Lag >= 0 { // unknown when the partition is gone
				gauge(descGroupLag, float64(l.Lag), g.Group, l.Topic, p)
				sum += l.Lag
			}
		}
		gauge(descGroupLagSum, float64(sum), g.Group)
	}
	for _, s := range groupStates {
		gauge(descGroups, float64(byState[s.String()]), s.String())
	}

	for kind, v := range n.RestartsByKind() {
		counter(descActorRestarts, float64(v), kind)
	}

	// Storage.
	counter(descSegmentSyncs, float64(n.SegmentSyncs()))
	pm := n.StorageMetrics()
	if pm == nil {
		return // stopped
	}
	gauge(descPebbleDisk, float64(pm.DiskSpaceUsage()))
	counter(descPebbleCompact, float64(pm.Compact.Count))
	gauge(descPebbleDebt, float64(pm.Compact.EstimatedDebt))
	counter(descPebbleFlushes, float64(pm.Flush.Count))
	gauge(descPebbleReadAmp, float64(pm.ReadAmp()))
	counter(descPebbleWALBytes, float64(pm.WAL.BytesWritten))
	gauge(descPebbleWALFiles, float64(pm.WAL.Files))
	if h := pm.LogWriter.FsyncLatency; h != nil {
		var d dto.Metric
		if err := h.Write(&d); err == nil && d.Histogram != nil {
			counter(descPebbleWALSyncs, float64(d.Histogram.GetSampleCount()))
		}
	}
}
