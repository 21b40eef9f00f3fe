package actors

// offsetsLeadership hands the group coordination of internal partition p
// to this node (lead) or takes it away: the coordinator of a group is the
// leader the controller elected for its __consumer_offsets partition; the
// group journals themselves are replicated by the coordination store
// (cluster.StreamJournal), so a new leader claims and replays them.
func (n *Node) offsetsLeadership(p int32, lead bool) {
	n.SetOffsetsCoordinator(p, lead)
}
