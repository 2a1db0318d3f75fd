// Package nsqd is the NSQ daemon as a library: New binds the listeners, Run
// serves the V2 TCP protocol and the HTTP API until its context ends, then
// flushes every queued, in-flight and deferred message to disk.
//
// Lock order: NSQD.mu, then Topic.mu, then Topic.backlogMu or Channel.mu,
// then client.mu; client.wmu (the socket writer) is taken alone.
package nsqd
