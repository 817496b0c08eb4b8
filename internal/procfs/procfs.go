// Package procfs holds what reading /proc's text files needs in more than
// one place.
package procfs

import (
	"strconv"
	"strings"
)

// Unescape undoes the octal escapes /proc puts in paths (\040 for a space,
// \011 for a tab, \012 for a newline, \134 for a backslash), as in
// /proc/self/mountinfo and /proc/swaps.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
