// Package nsqlookupd is NSQ's discovery daemon as a library. nsqds connect to
// its TCP port, IDENTIFY themselves and REGISTER the topics and channels they
// hold (the V1 lookup protocol, lookup_protocol_v1.go); consumers and
// nsqadmin ask its HTTP API (http.go) which nsqds have a topic. The
// registrations live in memory only (registration_db.go): a restarted
// nsqlookupd knows what nsqds re-register after reconnecting.
//
// New binds the two listeners; Run serves them until its context ends, then
// closes the listeners and every connection and waits for its goroutines.
//
// Where NSQ 1.3 has a quirk that no client depends on, this package differs:
//
//   - Ephemeral keys go when their last producer does, whichever way it
//     leaves: NSQ deletes them on UNREGISTER only, so a disconnect, or
//     "UNREGISTER t" for a topic with ephemeral channels, left empty
//     "#ephemeral" keys behind forever. Deleting an ephemeral topic deletes
//     its (producer-less) channel keys too, instead of orphaning them.
//   - Names are matched literally. NSQ's registration look-ups treat "*" as
//     a wildcard, so /topic/delete?topic=* deleted every topic and
//     /lookup?topic=* answered with all producers.
//   - The IDENTIFY body is limited to 5 MiB and read as it arrives, with
//     nsqd's texts "IDENTIFY invalid body size %d" (negative) and "IDENTIFY
//     body too big %d > %d"; NSQ allocated any int32 size and crashed on a
//     negative one. Command lines are cut at 1 KiB (the rest of the line is
//     read and dropped), so only an echoed name in an error can differ.
//   - A connection's clean-up removes only its own registrations, even if a
//     new connection from the same ip:port has already identified.
//   - Lists (/topics, /channels, /lookup, /nodes, /debug entries) are sorted
//     instead of in random map order.
//   - Options.Validate rejects an empty or non host:port listen address and
//     a zero or negative --inactive-producer-timeout, which NSQ accepted and
//     then listened on a random port or hid every producer.
//
// Lock order: registrationDB.mu and NSQLookupd.mu are each taken alone;
// nothing is called with either held except the registration maps.
package nsqlookupd
