package actors

import (
	"testing"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func TestEpochEnd(t *testing.T) {
	// Epochs 2 (from 10), 4 (from 30) and 5 (from 45) hold data; the
	// current epoch is 7 and has none yet; the log ends at 60.
	history := []*fluxopb.EpochStarted{{Epoch: 2, StartOffset: 10}, {Epoch: 4, StartOffset: 30}, {Epoch: 5, StartOffset: 45}}
	for _, c := range []struct {
		epoch int32
		want  EpochEnd
	}{
		{-1, EpochEnd{-1, -1}}, // undefined
		{8, EpochEnd{-1, -1}},  // newer than ours
		{7, EpochEnd{7, 60}},   // current: the log end
		{6, EpochEnd{5, 60}},   // no data: ends where 7 begins, reported as 5
		{5, EpochEnd{5, 60}},   // last with data
		{4, EpochEnd{4, 45}},   // ends where 5 starts
		{3, EpochEnd{2, 30}},   // unknown: the floor 2 and the start of 4
		{2, EpochEnd{2, 30}},   // first
		{1, EpochEnd{1, 10}},   // before all we know: the first start
		{0, EpochEnd{0, 10}},   // likewise
	} {
		if got := epochEnd(history, 7, 60, c.epoch); got != c.want {
			t.Errorf("epoch %d: %+v, want %+v", c.epoch, got, c.want)
		}
	}
	if got := epochEnd(nil, 0, 0, 0); got != (EpochEnd{0, 0}) {
		t.Errorf("empty log: %+v", got)
	}
}
