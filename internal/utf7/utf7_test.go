package utf7

import (
	"testing"
	"unicode/utf8"
)

var names = []struct{ utf8, utf7 string }{
	{"INBOX", "INBOX"},
	{"Entwürfe", "Entw&APw-rfe"},
	{"Ñoño/Año", "&ANE-o&APE-o/A&APE-o"},
	{"Tom & Jerry", "Tom &- Jerry"},
	{"日本語", "&ZeVnLIqe-"},
	{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	{"Gelöschte Elemente", "Gel&APY-schte Elemente"},
	{"emoji 📧", "emoji &2D3c5w-"},
	{"Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"},
	{".Sent.Archiv 2024", ".Sent.Archiv 2024"},
}

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	for _, c := range names {
		if got := Encode(c.utf8); got != c.utf7 {
			t.Errorf("Encode(%q) = %q, want %q", c.utf8, got, c.utf7)
		}
		if got, err := Decode(c.utf7); err != nil {
			t.Errorf("err: want nil; Decode(%q) = %q, %v, want %q", c.utf7, got, err, c.utf8)
		} else if got != c.utf8 {
			t.Errorf("got: want c.utf8; Decode(%q) = %q, %v, want %q", c.utf7, got, err, c.utf8)
		}
		if got := DecodeLenient(c.utf7); got != c.utf8 {
			t.Errorf("DecodeLenient(%q) = %q, want %q", c.utf7, got, c.utf8)
		}
	}
}

func TestDecodeRefusesInvalid(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"&", "&AGE", "&AGE-", "&ANE", "Ä", "&AEEAQg-", "&2D0-"} {
		if got, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) = %q, want an error", bad, got)
		}
	}
}

// TestLenientKeepsWhatIsNotUTF7: names some servers write on disk in UTF-8, or broken, come back
// as they are.
func TestLenientKeepsWhatIsNotUTF7(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"Entwürfe", "Tom & Jerry", "&AGE", "&ANE", "a&b"} {
		if got := DecodeLenient(s); got != s {
			t.Errorf("DecodeLenient(%q) = %q, want it unchanged", s, got)
		}
	}
}

// FuzzStrictAgreesWithLenient: every name the strict decoder accepts, the lenient one decodes the
// same way; every encoded name both accept.
func FuzzStrictAgreesWithLenient(f *testing.F) {
	for _, c := range names {
		f.Add(c.utf8)
		f.Add(c.utf7)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strict, err := Decode(s); err == nil {
			if lenient := DecodeLenient(s); lenient != strict {
				t.Fatalf("Decode(%q) = %q but DecodeLenient = %q", s, strict, lenient)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		enc := Encode(s)
		if got, err := Decode(enc); err != nil {
			t.Fatalf("err: want nil; Decode(Encode(%q)) = %q, %v", s, got, err)
		} else if got != s {
			t.Fatalf("got: want s; Decode(Encode(%q)) = %q, %v", s, got, err)
		}
		if got := DecodeLenient(enc); got != s {
			t.Fatalf("DecodeLenient(Encode(%q)) = %q", s, got)
		}
	})
}
