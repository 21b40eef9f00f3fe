package gateway

// ListGroups: versions 0-5, with the state filter (v4+) and the type filter
// (v5+; every group here is "classic"). Deleted groups and groups that never
// had members or offsets are not listed.

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(16, 0, 5, serveListGroups) }

func serveListGroups(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	for _, g := range c.server.node.ListGroups() {
		if !match(req.StatesFilter, g.State) || !match(req.TypesFilter, "classic") {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.Group, g.ProtocolType, g.State, "classic"
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
