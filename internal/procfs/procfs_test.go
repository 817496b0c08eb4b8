package procfs

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:           "/plain",
		`/a\040b`:          "/a b",
		`/x\134y`:          `/x\y`,
		`/tail\04`:         `/tail\04`,
		`/not\999octal`:    `/not\999octal`,
		`/two\040\011tabs`: "/two \ttabs",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
