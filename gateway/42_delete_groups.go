package gateway

// DeleteGroups: versions 0-2. A group with members is NON_EMPTY_GROUP; one
// that does not exist is GROUP_ID_NOT_FOUND; deleting journals a
// group-deleted event and drops the group's committed offsets.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
)

func init() { register(42, 0, 2, serveDeleteGroups) }

func serveDeleteGroups(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		switch {
		case id == "":
			rg.ErrorCode = kerr.InvalidGroupID.Code
		case c.server.node.ListGroupSummary(id) == nil:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
		default:
			res, err := c.server.node.DeleteGroup(ctx, id)
			if err != nil {
				rg.ErrorCode = actors.GroupErrorCode(err)
			} else if res.Err != nil {
				rg.ErrorCode = res.Err.(*kerr.Error).Code
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
