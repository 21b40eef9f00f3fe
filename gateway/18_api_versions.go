package gateway

// ApiVersions: versions 0-3.
//
// The answer lists exactly the registry (registry.go). A request above our
// maximum version is answered at version 0 with UNSUPPORTED_VERSION and the
// list, as clients expect (KIP-511), by the connection before decoding; see
// conn.go. Skipped: finalized features and supported features (v3 tagged
// fields) are left empty.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(18, 0, 3, serveApiVersions) }

func serveApiVersions(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	fillApiVersions(resp)
	return resp, nil
}

func fillApiVersions(resp *kmsg.ApiVersionsResponse) {
	for _, h := range servedAPIs() {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey = h.key
		k.MinVersion = h.minVersion
		k.MaxVersion = h.maxVersion
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
}
