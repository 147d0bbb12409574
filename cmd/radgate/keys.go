package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/radgate/radgate/kms"
	"github.com/radgate/radgate/store"
)

const keysUsage = `usage: radgate keys init|rotate --file PATH
       radgate keys init --pkcs11 URI

Manages the key file that seals the stored instances at rest (the gateway's
blob_key_file): AES-256 key-encryption keys that wrap each record's own
data key (AES-256-GCM, NIST SP 800-38D).

  init    creates PATH (mode 0600) holding one new key; it never replaces
          an existing file, since a lost key loses every instance it sealed.
  rotate  adds a new key to PATH, which seals what is stored from then on
          (a running gateway takes it within seconds); the older keys stay,
          so what they sealed stays readable. Prints the new key's id.

With --pkcs11, init makes the key-encryption key on a PKCS #11 token (an
HSM) instead: the URI's object, an AES-256 key that never leaves the token
(the gateway's blob_kms, an RFC 7512 URI
pkcs11:token=LABEL;object=KEY?module-path=LIB&pin-source=PINFILE). To
rotate, init a key under a new object label and point blob_kms at it; keep
the old keys on the token, for what they sealed.

Keep a copy of the key file apart from the data (a backup of the data
without it is unreadable, as is the data once the file is lost).

Options:
`

// keysCmd: `radgate keys init|rotate`, on a key file or a PKCS #11 token.
func keysCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fset := newFlags("keys", keysUsage, stderr)
	path := fset.String("file", "", "the key file")
	hsm := fset.String("pkcs11", "", "a PKCS #11 URI: make the key on that token (init only)")
	pos, err := parseInterleaved(fset, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 || (pos[0] != "init" && pos[0] != "rotate") || (*path == "") == (*hsm == "") ||
		*hsm != "" && pos[0] != "init" {
		fset.Usage()
		return 2
	}
	if *hsm != "" {
		uri, err := kms.ParseURI(*hsm)
		if err == nil {
			err = kms.GenerateKey(uri)
		}
		if err != nil {
			fmt.Fprintf(stderr, "radgate keys init: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "created key %s on token %s\n", uri.Object, uri.Token)
		return 0
	}
	if pos[0] == "init" {
		kf, err := store.GenerateKeyFile(*path)
		if errors.Is(err, fs.ErrExist) {
			fmt.Fprintf(stderr, "radgate keys init: %s exists; not replacing it (use rotate to add a key)\n", *path)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "radgate keys init: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "created %s with key %s\n", *path, kf.Current())
		return 0
	}
	kf, err := store.OpenKeyFile(*path)
	if err != nil {
		fmt.Fprintf(stderr, "radgate keys rotate: %v\n", err)
		return 1
	}
	id, err := kf.Rotate()
	if err != nil {
		fmt.Fprintf(stderr, "radgate keys rotate: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, id)
	return 0
}
