// Package version holds the version every binary reports. It is NSQ's version
// number because clients and tools compare against it (nsqadmin, go-nsq logs).
package version

import (
	"fmt"
	"runtime"
)

// Binary is the NSQ release whose externally visible behaviour we implement.
const Binary = "1.3.0"

// String returns "<app> v1.3.0 (built w/go1.26.8)", the --version line.
func String(app string) string {
	return fmt.Sprintf("%s v%s (built w/%s)", app, Binary, runtime.Version())
}
