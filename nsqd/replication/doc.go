// Package replication keeps the non-ephemeral topics and channels of a
// replica set of nsqd daemons in one raft log (hashicorp/raft), so that an
// acknowledged message survives the loss of any one machine of three.
//
// The package knows nothing of nsqd's types. nsqd calls it through Node
// (publish, create/delete/pause/empty, FIN/REQ progress) and it calls nsqd
// back through Dispatcher, on the leader only, to hand over what is to be
// delivered. The replicated state itself lives here, in the FSM: for every
// topic and channel, the messages not yet finished, with their attempts and
// deliver-at times, its limit overrides (limits.go: the FSM enforces
// max_depth, max_bytes and drop-oldest, and publishes dead letters) and the
// origins of the dead letters it received. A channel's messages are a
// pendingSet (pendingset.go): ID-ordered records in copy-on-write blocks,
// so a snapshot shares them. nsqd's in-memory channels on the leader are a
// dispatch cache of that state; a follower's are empty.
//
// docs/replication.md explains the design: granularity, log entries, where
// channel state lives, the failover window and what is and is not promised.
//
// Lock order: FSM.mu, then whatever the Dispatcher takes (nsqd's locks). The
// Dispatcher must never call back into the FSM; Node's progress batcher has
// its own mutex, taken alone, so nsqd may report FIN/REQ under its locks.
package replication
