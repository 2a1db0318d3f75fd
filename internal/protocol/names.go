package protocol

import "strings"

const ephemeralSuffix = "#ephemeral"

// IsValidName reports whether name is a valid topic or channel name:
// 1..64 bytes of [.a-zA-Z0-9_-], optionally ending in "#ephemeral" (which
// counts towards the 64).
func IsValidName(name string) bool {
	if len(name) < 1 || len(name) > 64 {
		return false
	}
	base := strings.TrimSuffix(name, ephemeralSuffix)
	if base == "" {
		return false
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// IsValidTopicName reports whether name is a valid topic name.
func IsValidTopicName(name string) bool { return IsValidName(name) }

// IsValidChannelName reports whether name is a valid channel name.
func IsValidChannelName(name string) bool { return IsValidName(name) }

// IsEphemeral reports whether a topic or channel name has the #ephemeral suffix.
func IsEphemeral(name string) bool { return strings.HasSuffix(name, ephemeralSuffix) }
