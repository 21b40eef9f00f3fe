package gateway

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest feeds arbitrary frame bodies to the request decoder: it
// must never panic, whatever the header, key, version or body.
func FuzzDecodeRequest(f *testing.F) {
	for _, api := range servedAPIs() {
		for v := api.minVersion; v <= api.maxVersion; v++ {
			req := kmsg.RequestForKey(api.key)
			req.SetVersion(v)
			hdr := binary.BigEndian.AppendUint16(nil, uint16(api.key))
			hdr = binary.BigEndian.AppendUint16(hdr, uint16(v))
			hdr = binary.BigEndian.AppendUint32(hdr, 7)
			hdr = binary.BigEndian.AppendUint16(hdr, 0xffff) // null client id
			if req.IsFlexible() {
				hdr = append(hdr, 0)
			}
			f.Add(req.AppendTo(hdr))
		}
	}
	f.Add([]byte{0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeRequest(body)
	})
}
