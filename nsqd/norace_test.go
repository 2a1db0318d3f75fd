//go:build !race

package nsqd

// raceEnabled: see race_test.go.
const raceEnabled = false
