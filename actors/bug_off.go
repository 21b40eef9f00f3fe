//go:build !fluxo_bug_ack_before_hw

package actors

// bugAckBeforeHW is false in every real build: see bug_ack_before_hw.go.
const bugAckBeforeHW = false
