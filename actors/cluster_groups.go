package actors

// offsetsLeadership hands the group coordination of internal partition p
// to this node (lead) or takes it away.
func (n *Node) offsetsLeadership(p int32, lead bool) {}
