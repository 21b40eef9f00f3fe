package gateway

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/actors"
)

// The cluster as this gateway reports it: on a single node, itself leading
// everything; in a cluster, the live brokers and the leaderships the
// controller recorded (clients send each request to the leader, and a
// broker that does not lead answers NOT_LEADER_OR_FOLLOWER).

// brokers lists the live brokers, this one always included.
func (s *Server) brokers() []actors.ClusterBroker {
	self := actors.ClusterBroker{NodeID: s.cfg.NodeID, Host: s.host, Port: s.port}
	if !s.node.Clustered() {
		return []actors.ClusterBroker{self}
	}
	out := s.node.LiveBrokers()
	for i, b := range out {
		if b.NodeID == self.NodeID {
			out[i] = self
			return out
		}
	}
	return append(out, self)
}

// controllerID is the controller's id (this node on a single node).
func (s *Server) controllerID() int32 {
	if !s.node.Clustered() {
		return s.cfg.NodeID
	}
	return s.node.ControllerID()
}

// broker finds a live broker's address.
func (s *Server) broker(id int32) (actors.ClusterBroker, bool) {
	for _, b := range s.brokers() {
		if b.NodeID == id {
			return b, true
		}
	}
	return actors.ClusterBroker{}, false
}

// leadership is a partition's leader, epoch, replicas and in-sync set as
// Metadata reports them, with the error code for the partition (0,
// LEADER_NOT_AVAILABLE).
func (s *Server) leadership(topic string, p int32) (actors.Leadership, int16) {
	if !s.node.Clustered() {
		st, ok := s.node.Partition(topic, p)
		if !ok {
			return actors.Leadership{Leader: -1, Replicas: []int32{s.cfg.NodeID}, ISR: []int32{s.cfg.NodeID}}, kerr.LeaderNotAvailable.Code
		}
		return actors.Leadership{Leader: s.cfg.NodeID, LeaderEpoch: st.LeaderEpoch, Replicas: []int32{s.cfg.NodeID}, ISR: []int32{s.cfg.NodeID}}, 0
	}
	l, ok := s.node.PartitionLeadership(topic, p)
	if !ok {
		return actors.Leadership{Leader: -1, LeaderEpoch: -1}, kerr.LeaderNotAvailable.Code
	}
	if l.Leader < 0 {
		return l, kerr.LeaderNotAvailable.Code
	}
	if _, live := s.broker(l.Leader); !live {
		l.Leader = -1
		return l, kerr.LeaderNotAvailable.Code
	}
	return l, 0
}
