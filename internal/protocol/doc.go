// Package protocol holds what nsqd's V2 and nsqlookupd's V1 TCP protocols share:
// the magic bytes, server-to-client framing, command-line tokenising, topic
// and channel name rules, and the wire error type.
package protocol
