package persistence

// RetentionStart returns the log start offset retention allows, given the
// partition's segments (oldest first), its current log start, the time now
// and the limits (-1 disables a limit):
//
//   - by time, a segment goes when all its records are older than
//     retentionMs (its MaxTimestamp < nowMs-retentionMs); the active segment
//     too, in which case the new start is its NextOffset;
//   - by size, sealed segments go, oldest first, while the bytes kept,
//     counted from the newest segment, exceed retentionBytes.
//
// Deletion stops at the first segment that must stay, so the result is the
// base offset of the oldest kept segment (or the active segment's NextOffset),
// never below logStart.
func RetentionStart(segs []SegmentInfo, logStart int64, nowMs, retentionMs, retentionBytes int64) int64 {
	var total int64
	for _, s := range segs {
		total += s.Bytes
	}
	start := logStart
	for i, s := range segs {
		byTime := retentionMs >= 0 && s.MaxTimestamp >= 0 && s.NextOffset > s.BaseOffset &&
			s.MaxTimestamp < nowMs-retentionMs
		bySize := retentionBytes >= 0 && !s.Active && total > retentionBytes
		if !byTime && !bySize {
			break
		}
		total -= s.Bytes
		next := s.NextOffset
		if !s.Active && i+1 < len(segs) {
			next = segs[i+1].BaseOffset
		}
		if next > start {
			start = next
		}
	}
	return start
}
