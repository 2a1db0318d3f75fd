package clusterinfo

import "context"

// Replication is an nsqd's GET /replication: its replica set as it sees it
// (replica sets are beyond NSQ, docs/replication.md). An NSQ nsqd, or one
// without --replication-address, answers 404: not replicated.
type Replication struct {
	ID            string `json:"id"`
	Role          string `json:"role"` // leader, follower, candidate, shutdown
	Dispatching   bool   `json:"dispatching"`
	LeaderID      string `json:"leader_id"`
	LeaderAddress string `json:"leader_address"`
	Term          uint64 `json:"term"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	LastIndex     uint64 `json:"last_index"`
	// Lag is how many committed log entries this replica has not applied
	// yet: the commit index of its leader, when the leader is among the
	// nodes asked together (SetLags), else its own.
	Lag uint64 `json:"lag"`
}

// NodeReplications returns the GET /replication of each producer, in order,
// with Lag set; nil where it did not answer (not replicated, or a failure).
func (c *Cluster) NodeReplications(ctx context.Context, ps []*Producer) []*Replication {
	out := make([]*Replication, len(ps))
	each(httpAddrs(ps), func(i int, addr string) {
		var r Replication
		if err := c.client.getJSON(ctx, addr, "/replication", &r); err == nil && r.ID != "" {
			out[i] = &r
		}
	})
	setLags(out)
	return out
}

// setLags sets each replica's Lag against its leader's commit index when
// the leader is in rs (the same replica ID can be in several sets: the
// leader is the one whose own ID and leader agree and whose term is the
// follower's), else against its own.
func setLags(rs []*Replication) {
	for _, r := range rs {
		if r == nil {
			continue
		}
		commit := r.CommitIndex
		for _, l := range rs {
			if l != nil && l.Role == "leader" && l.ID == r.LeaderID && l.Term == r.Term && l.CommitIndex > commit {
				commit = l.CommitIndex
			}
		}
		if commit > r.AppliedIndex {
			r.Lag = commit - r.AppliedIndex
		}
	}
}
