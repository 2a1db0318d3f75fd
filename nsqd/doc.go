// Package nsqd is the NSQ daemon as a library: New binds the listeners, Run
// serves the V2 TCP protocol and the HTTP API until its context ends, then
// flushes every queued, in-flight and deferred message to disk.
//
// docs/architecture.md describes the message flow, durable mode, drain,
// peek, replication and the lock order with the reasons for it. Lock
// order, outermost first:
//
//	replication.FSM.mu (replication: held across the Dispatcher calls)
//	replicaSet.relaySync (replication: relay management)
//	NSQD.persistMu
//	NSQD.mu
//	Topic.mu
//	Topic.backlogMu or Channel.mu (never both)
//	Channel.diskMu (with none of the above held but Topic.mu for reading)
//	client.wmu, then client.mu (with no topic or channel lock held)
//	leaves: journal.mu, diskq.Queue.mu, NSQD.clientsMu, guidFactory.mu,
//	latencyWindow.mu, deadLetterLog.mu, lookupManager.mu, drainer.mu,
//	replicaSet.relayMu, relay.mu, progressBatcher.mu, Node.peersMu,
//	conditionState.mu (health)
//
// journal.mu is taken under Topic.backlogMu, Channel.mu or Channel.diskMu;
// diskq.Queue.mu under Topic.mu or Channel.diskMu, and it is released
// during fsyncs, so it never holds journal.mu. No lock of ours is held
// when raft is waited for (Apply, Barrier); code under FSM.mu must never
// wait for raft. docs/architecture.md lists the known exceptions.
package nsqd
