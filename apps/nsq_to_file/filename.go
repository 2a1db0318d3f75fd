package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// expandFilename replaces the fixed tokens of --filename-format: <TOPIC>,
// <HOST> (the host identifier) and <PID>. <DATETIME> and <REV> are left for
// each opening.
func expandFilename(format, topic, host string, pid int) string {
	return strings.NewReplacer(
		"<TOPIC>", topic,
		"<HOST>", host,
		"<PID>", strconv.Itoa(pid),
	).Replace(format)
}

// hostIdentifier returns what <HOST> stands for: --host-identifier with
// <SHORT_HOST> and <HOSTNAME> replaced, or the short host name.
func hostIdentifier(identifier, hostname string) string {
	short, _, _ := strings.Cut(hostname, ".")
	if identifier == "" {
		return short
	}
	return strings.NewReplacer("<SHORT_HOST>", short, "<HOSTNAME>", hostname).Replace(identifier)
}

// localHostname is os.Hostname, "" when it fails.
func localHostname() string {
	h, _ := os.Hostname()
	return h
}

// revision returns the text that replaces <REV>: "-000042".
func revision(rev int) string {
	b := []byte{'-'}
	s := strconv.Itoa(rev)
	for range 6 - len(s) {
		b = append(b, '0')
	}
	return string(append(b, s...))
}

// strftime formats t with the strftime directives of --datetime-format:
// %Y %y %m %d %H %I %M %S %p %B %b %A %a %Z %z and %%. Any other character,
// and an unknown directive, is copied as it is.
//
// NSQ translated the format to a Go layout, so literal text that happens to
// be a Go layout element ("2006", "Jan", "MST", ...) was replaced as well;
// this formats each directive itself and never touches literal text.
func strftime(format string, t time.Time) string {
	b := make([]byte, 0, len(format)+16)
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b = append(b, c)
			continue
		}
		i++
		switch d := format[i]; d {
		case 'Y':
			b = appendPadded(b, t.Year(), 4)
		case 'y':
			b = appendPadded(b, t.Year()%100, 2)
		case 'm':
			b = appendPadded(b, int(t.Month()), 2)
		case 'd':
			b = appendPadded(b, t.Day(), 2)
		case 'H':
			b = appendPadded(b, t.Hour(), 2)
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			b = appendPadded(b, h, 2)
		case 'M':
			b = appendPadded(b, t.Minute(), 2)
		case 'S':
			b = appendPadded(b, t.Second(), 2)
		case 'p':
			if t.Hour() < 12 {
				b = append(b, "AM"...)
			} else {
				b = append(b, "PM"...)
			}
		case 'B':
			b = append(b, t.Month().String()...)
		case 'b':
			b = append(b, t.Month().String()[:3]...)
		case 'A':
			b = append(b, t.Weekday().String()...)
		case 'a':
			b = append(b, t.Weekday().String()[:3]...)
		case 'Z':
			b = t.AppendFormat(b, "MST")
		case 'z':
			b = t.AppendFormat(b, "-0700")
		case '%':
			b = append(b, '%')
		default:
			b = append(b, '%', d)
		}
	}
	return string(b)
}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	s := strconv.Itoa(n)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}
