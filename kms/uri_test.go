package kms

import (
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	good := "pkcs11:token=radgate;object=kek%202026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/radgate/hsm.pin"
	u, err := ParseURI(good)
	if err != nil {
		t.Fatal(err)
	}
	want := URI{Token: "radgate", Object: "kek 2026", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "/etc/radgate/hsm.pin"}
	if u != want {
		t.Fatalf("ParseURI = %+v, want %+v", u, want)
	}
	if back, err := ParseURI(u.String()); err != nil || back != u {
		t.Errorf("String does not parse back: %q → %+v, %v", u.String(), back, err)
	}
	for in, wantErr := range map[string]string{
		"":                        "not a PKCS #11 URI",
		"file:/x":                 "not a PKCS #11 URI",
		"pkcs11:token=a;object=b": "module-path missing",
		"pkcs11:token=a?module-path=m&pin-source=p":                                         "object missing",
		"pkcs11:token=a;object=b?module-path=m&pin-value=1234":                              "pin-value is refused",
		"pkcs11:token=a;object=b;serial=1?module-path=m&pin-source=p":                       `attribute "serial" not supported`,
		"pkcs11:token=a;token=c;object=b?module-path=m&pin-source=p":                        "token given twice",
		"pkcs11:token=a;object?module-path=m&pin-source=p":                                  "not name=value",
		"pkcs11:token=a;object=%zz?module-path=m&pin-source=p":                              "object: bad value",
		"pkcs11:token=a;object=" + strings.Repeat("k", 256) + "?module-path=m&pin-source=p": "longer than 255",
		"pkcs11:" + strings.Repeat("x", maxURILen):                                          "longer than",
	} {
		if _, err := ParseURI(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseURI(%.60q) = %v, want an error saying %q", in, err, wantErr)
		}
	}
}

// FuzzParseURI: any input parses or fails cleanly, and what parses prints
// back to itself.
func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=radgate;object=kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/p")
	f.Add("pkcs11:token=a%3Bb;object=%26?module-path=m&pin-source=p")
	f.Add("pkcs11:;?&")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		back, err := ParseURI(u.String())
		if err != nil || back != u {
			t.Fatalf("%q parsed to %+v, printed as %q, which parses to %+v, %v", s, u, u.String(), back, err)
		}
	})
}
