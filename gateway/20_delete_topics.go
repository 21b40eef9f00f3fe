package gateway

// DeleteTopics: versions 0-6.
//
// By name (all versions) or, in v6, by topic id: an id no topic has is
// UNKNOWN_TOPIC_ID, an unknown name UNKNOWN_TOPIC_OR_PARTITION, an entry
// with both or neither INVALID_REQUEST. Deleting stops the partitions and
// removes their data before answering; the request's timeout bounds it.
// Skipped: throttling (throttle is always 0), the
// delete.topic.enable switch (deletion is always allowed).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/cluster"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func init() { register(20, 0, 6, serveDeleteTopics) }

func serveDeleteTopics(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	ctx, cancel := adminTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	s := c.server
	topics := req.Topics
	if req.Version < 6 {
		topics = nil
		for i := range req.TopicNames {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = &req.TopicNames[i]
			topics = append(topics, rt)
		}
	}
	for _, rt := range topics {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		s.deleteTopic(ctx, rt, &st)
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) deleteTopic(ctx context.Context, rt kmsg.DeleteTopicsRequestTopic, st *kmsg.DeleteTopicsResponseTopic) {
	byID := rt.TopicID != [16]byte{}
	if byID == (rt.Topic != nil) {
		st.ErrorCode, st.ErrorMessage = codeMsg(kerr.InvalidRequest, "give either a topic name or a topic id")
		return
	}
	name, id := "", []byte(nil)
	if byID {
		t := s.node.TopicByID(rt.TopicID)
		if t == nil {
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.UnknownTopicID, "no topic has id %x", rt.TopicID)
			return
		}
		name, id = t.Name, rt.TopicID[:]
		st.Topic = &name
	} else {
		name = *rt.Topic
		if cluster.ValidateTopicName(name) != nil {
			st.ErrorCode, st.ErrorMessage = codeMsg(kerr.UnknownTopicOrPartition, "topic %q does not exist (not a valid name)", name)
			return
		}
		if t := s.node.Topic(name); t != nil {
			copy(st.TopicID[:], t.Id)
		}
	}
	res, err := s.node.DeleteTopic(ctx, &fluxopb.DeleteTopicRequest{Name: name, Id: id})
	if err != nil {
		st.ErrorCode, st.ErrorMessage = s.topicErrCode(ctx, "delete topic", err)
		return
	}
	if res.ErrorCode != 0 {
		msg := res.ErrorMessage
		st.ErrorCode, st.ErrorMessage = int16(res.ErrorCode), &msg
	}
}
