package actors

import "github.com/fluxo-broker/fluxo/proto/fluxopb"

// JournalEvents counts the events in the journal of a group's internal
// partition (tests of compaction).
func (n *Node) JournalEvents(groupID string) int {
	count := 0
	_ = n.store.Journal().Replay(offsetsJournal(OffsetsPartition(groupID, n.cfg.OffsetsPartitions)), 0, func(uint64, *fluxopb.JournalEvent) error {
		count++
		return nil
	})
	return count
}

// GroupRequest is the message a group coordinator actor serves, for tests
// that inject a panic on the next request (and not on a timer tick).
type GroupRequest = groupRequest
