//go:build fluxo_bug_ack_before_hw

package actors

// A deliberately broken build for checking the checker (issue 6): with
// this tag, acks=-1 produce is answered once the leader alone has the
// batch durably, before the high watermark passes it, as acks=1 is. A
// leader that dies then takes acknowledged records with it, and the chaos
// run must report them as lost:
//
//	go test -tags fluxo_bug_ack_before_hw ./testkit/ -run '^TestClusterChaos$' -v
const bugAckBeforeHW = true
