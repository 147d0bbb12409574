package kms

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// URI is the part of an RFC 7512 PKCS #11 URI radgate reads:
//
//	pkcs11:token=radgate;object=kek-2026-12?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/radgate/hsm.pin
//
// token names the token (CKA_LABEL of the token, by its token info),
// object the AES key-encryption key new records are sealed under (its
// CKA_LABEL; older ones are found by theirs), module-path the PKCS #11
// library, pin-source a file holding the user PIN (mode 0600; its first
// line). A PIN in the URI itself (pin-value) is refused: the setting would
// put a secret in the configuration.
type URI struct {
	Token, Object string
	ModulePath    string
	PINSource     string
}

// maxURILen bounds a URI, checked before it is parsed.
const maxURILen = 4096

// ParseURI parses a PKCS #11 URI (RFC 7512 section 2.3). Attributes
// other than those of URI are refused, so that a misspelt one does not
// pass unnoticed; values are percent-decoded.
func ParseURI(s string) (URI, error) {
	if len(s) > maxURILen {
		return URI{}, fmt.Errorf("kms: PKCS #11 URI longer than %d bytes", maxURILen)
	}
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return URI{}, errors.New(`kms: not a PKCS #11 URI (want "pkcs11:token=…;object=…?module-path=…&pin-source=…")`)
	}
	path, query, _ := strings.Cut(rest, "?")
	var u URI
	attrs := []struct {
		list, sep string
		set       map[string]*string
	}{
		{path, ";", map[string]*string{"token": &u.Token, "object": &u.Object}},
		{query, "&", map[string]*string{"module-path": &u.ModulePath, "pin-source": &u.PINSource}},
	}
	for _, a := range attrs {
		if a.list == "" {
			continue
		}
		for _, kv := range strings.Split(a.list, a.sep) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return URI{}, fmt.Errorf("kms: PKCS #11 URI: %q is not name=value", kv)
			}
			if k == "pin-value" {
				return URI{}, errors.New("kms: PKCS #11 URI: pin-value is refused; put the PIN in a file named by pin-source")
			}
			dst, known := a.set[k]
			if !known {
				return URI{}, fmt.Errorf("kms: PKCS #11 URI: attribute %q not supported (radgate reads token, object, module-path, pin-source)", k)
			}
			if *dst != "" {
				return URI{}, fmt.Errorf("kms: PKCS #11 URI: %s given twice", k)
			}
			dv, err := url.PathUnescape(v)
			if err != nil || dv == "" {
				return URI{}, fmt.Errorf("kms: PKCS #11 URI: %s: bad value", k)
			}
			*dst = dv
		}
	}
	for _, req := range []struct{ name, v string }{
		{"token", u.Token}, {"object", u.Object}, {"module-path", u.ModulePath}, {"pin-source", u.PINSource},
	} {
		if req.v == "" {
			return URI{}, fmt.Errorf("kms: PKCS #11 URI: %s missing", req.name)
		}
	}
	if len(u.Object) > 255 {
		return URI{}, errors.New("kms: PKCS #11 URI: object label longer than 255 bytes")
	}
	return u, nil
}

// String is u as a URI (for logs and the banner: it holds no secret).
func (u URI) String() string {
	return "pkcs11:token=" + esc(u.Token) + ";object=" + esc(u.Object) +
		"?module-path=" + esc(u.ModulePath) + "&pin-source=" + esc(u.PINSource)
}

// esc percent-encodes all but RFC 3986's unreserved characters, "/" and
// ":" (which RFC 7512 allows unescaped in values).
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/:", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
