package dcm

import "testing"

// TestCharsetDecode: the Patient's Name of each file of pydicom's
// charset_files (pydicom/data/charset_files/FileInfo.txt, MIT licence;
// the decoded names are those pydicom's test_charset.py expects), plus
// the default repertoire's fallbacks.
func TestCharsetDecode(t *testing.T) {
	for _, tc := range []struct {
		file, charset, raw, want string
	}{
		{"chrArab", "ISO_IR 127", "\xe2\xc8\xc7\xe6\xea^\xe4\xe6\xd2\xc7\xd1", "قباني^لنزار"},
		{"chrFren", "ISO_IR 100", "Buc^J\xe9r\xf4me", "Buc^Jérôme"},
		{"chrGerm", "ISO_IR 100", "\xc4neas^R\xfcdiger", "Äneas^Rüdiger"},
		{"chrGreek", "ISO_IR 126", "\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2", "Διονυσιος"},
		{"chrH31", `\ISO 2022 IR 87`,
			"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
			"Yamada^Tarou=山田^太郎=やまだ^たろう"},
		{"chrH32", `ISO 2022 IR 13\ISO 2022 IR 87`,
			"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J=\x1b$B$d$^$@\x1b(J^\x1b$B$?$m$&\x1b(J",
			"ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"},
		{"chrHbrw", "ISO_IR 138", "\xf9\xf8\xe5\xef^\xe3\xe1\xe5\xf8\xe4", "שרון^דבורה"},
		{"chrI2", `\ISO 2022 IR 149`,
			"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf",
			"Hong^Gildong=洪^吉洞=홍^길동"},
		{"chrRuss", "ISO_IR 144", "\xbb\xee\xdace\xdc\xd1yp\xd3", "Люкceмбypг"},
		{"chrX1", "ISO_IR 192", "Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1=", "Wang^XiaoDong=王^小東="},
		{"chrX2", "GB18030 ", "Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab=", "Wang^XiaoDong=王^小东="},
		{"default, ASCII", "", "Doe^Jane", "Doe^Jane"},
		{"default, UTF-8 unannounced", "", "Jérôme", "Jérôme"},
		{"default, Latin-1 unannounced", "", "J\xe9r\xf4me", "Jérôme"},
		{"unknown term", "ISO_IR 999", "J\xe9r\xf4me", "Jérôme"},
		{"UTF-8, invalid byte", "ISO_IR 192", "a\xffb", "a\uFFFDb"},
		{"truncated escape", `\ISO 2022 IR 87`, "ab\x1b$", "ab"},
		{"unknown escape", `\ISO 2022 IR 87`, "a\x1b(Zb", "ab"},
	} {
		if got := ParseCharset(tc.charset).Decode(tc.raw); got != tc.want {
			t.Errorf("%s: Decode(%q) = %q, want %q", tc.file, tc.raw, got, tc.want)
		}
	}
}

func FuzzCharsetDecode(f *testing.F) {
	f.Add(`\ISO 2022 IR 87`, "Yamada^Tarou=\x1b$B;3ED\x1b(B")
	f.Add(`\ISO 2022 IR 149`, "\x1b$)C\xfb\xf3")
	f.Add("ISO_IR 100", "J\xe9r\xf4me")
	f.Fuzz(func(t *testing.T, cs, s string) {
		_ = ParseCharset(cs).Decode(s) // must not panic
	})
}
