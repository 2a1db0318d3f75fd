package clusterinfo

import "testing"

func TestSetLags(t *testing.T) {
	leader := &Replication{ID: "1", Role: "leader", LeaderID: "1", Term: 3, CommitIndex: 100, AppliedIndex: 100}
	behind := &Replication{ID: "2", Role: "follower", LeaderID: "1", Term: 3, CommitIndex: 90, AppliedIndex: 80}
	ownOnly := &Replication{ID: "3", Role: "follower", LeaderID: "9", Term: 3, CommitIndex: 50, AppliedIndex: 45}
	oldTerm := &Replication{ID: "4", Role: "follower", LeaderID: "1", Term: 2, CommitIndex: 70, AppliedIndex: 70}
	setLags([]*Replication{leader, nil, behind, ownOnly, oldTerm})
	for _, c := range []struct {
		r    *Replication
		want uint64
	}{{leader, 0}, {behind, 20}, {ownOnly, 5}, {oldTerm, 0}} {
		if c.r.Lag != c.want {
			t.Errorf("replica %s: lag %d, want %d", c.r.ID, c.r.Lag, c.want)
		}
	}
}
