//go:build race

package nsqd

// raceEnabled: the race detector roughly doubles stack frames, so stack-size
// checks are skipped under it.
const raceEnabled = true
