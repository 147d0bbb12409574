// Package kms holds the store.KeyProviders whose key-encryption keys live
// outside radgate: PKCS11, an AES key on a PKCS #11 token (an HSM, a
// network HSM, SoftHSM), which wraps and unwraps each record's data key
// itself, so the KEK never enters radgate's memory.
package kms

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/radgate/radgate/store"
)

// Wrapping parameters: AES-256-GCM (CKM_AES_GCM, PKCS #11 v2.40 2.10.11)
// with a 96-bit random IV carried in front of the ciphertext, a 128-bit
// tag and store.DataKeyAAD as associated data, as store.KeyFile wraps.
const (
	gcmIVLen   = 12
	gcmTagBits = 128
	kekBits    = 256
	// sessions is how many operations run on the token at once.
	sessions = 4
)

// PKCS11 is a store.KeyProvider over a PKCS #11 token: the KEK named by the
// URI's object seals new records; a record sealed under an older KEK is
// opened with the key of that label, which must stay on the token. Its
// methods are safe for concurrent use; Close logs out and unloads the
// module. A process has one PKCS11 open at a time: the module's state
// (PKCS #11 C_Initialize, C_Finalize) is the process's.
type PKCS11 struct {
	uri  URI
	ctx  *pkcs11.Ctx
	pool chan pkcs11.SessionHandle

	mu   sync.Mutex
	keys map[string]pkcs11.ObjectHandle // by label

	closeOnce sync.Once
	closeErr  error
}

// Open loads the module, finds the token by its label, logs in with the
// PIN from pin-source and checks that the current KEK is there.
func Open(uri URI) (*PKCS11, error) {
	p, err := openSession(uri)
	if err != nil {
		return nil, err
	}
	if _, err := p.key(uri.Object); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// openSession is Open without looking for the KEK.
func openSession(uri URI) (*PKCS11, error) {
	pin, err := readPIN(uri.PINSource)
	if err != nil {
		return nil, err
	}
	ctx := pkcs11.New(uri.ModulePath)
	if ctx == nil {
		return nil, fmt.Errorf("kms: cannot load PKCS #11 module %s", uri.ModulePath)
	}
	p := &PKCS11{uri: uri, ctx: ctx, keys: map[string]pkcs11.ObjectHandle{}}
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		ctx.Destroy()
		return nil, fmt.Errorf("kms: %s: initialize: %w", uri.ModulePath, err)
	}
	slot, err := p.slot()
	if err != nil {
		p.finalize()
		return nil, err
	}
	p.pool = make(chan pkcs11.SessionHandle, sessions)
	for range sessions {
		sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("kms: token %q: open session: %w", uri.Token, err)
		}
		p.pool <- sh
	}
	// The login is the application's, for every session (PKCS #11 5.6).
	sh := <-p.pool
	err = ctx.Login(sh, pkcs11.CKU_USER, pin)
	p.pool <- sh
	if err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		p.Close()
		return nil, fmt.Errorf("kms: token %q: login: %w", uri.Token, err)
	}
	return p, nil
}

// readPIN reads the first line of a PIN file that only its owner may read.
func readPIN(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("kms: pin-source: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("kms: pin-source: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("kms: pin-source %s: mode %v lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", fmt.Errorf("kms: pin-source %s: no PIN in it (%v)", path, err)
	}
	return line, nil
}

// slot finds the slot holding the token labelled uri.Token.
func (p *PKCS11) slot() (uint, error) {
	slots, err := p.ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("kms: %s: slots: %w", p.uri.ModulePath, err)
	}
	for _, s := range slots {
		ti, err := p.ctx.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " ") == p.uri.Token {
			return s, nil
		}
	}
	return 0, fmt.Errorf("kms: no token labelled %q in %s", p.uri.Token, p.uri.ModulePath)
}

// key finds the AES secret key labelled label, once.
func (p *PKCS11) key(label string) (pkcs11.ObjectHandle, error) {
	p.mu.Lock()
	h, ok := p.keys[label]
	p.mu.Unlock()
	if ok {
		return h, nil
	}
	var found []pkcs11.ObjectHandle
	err := p.with(func(sh pkcs11.SessionHandle) error {
		var err error
		found, err = findKeys(p.ctx, sh, label)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("kms: token %q: find key %q: %w", p.uri.Token, label, err)
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("%w: no AES key labelled %q on token %q", store.ErrUnknownKey, label, p.uri.Token)
	case 1:
	default:
		return 0, fmt.Errorf("kms: token %q holds %d keys labelled %q; labels must be unique", p.uri.Token, len(found), label)
	}
	p.mu.Lock()
	p.keys[label] = found[0]
	p.mu.Unlock()
	return found[0], nil
}

// findKeys lists the AES secret keys labelled label (at most two: one is
// the answer, two an error).
func findKeys(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) ([]pkcs11.ObjectHandle, error) {
	if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		return nil, err
	}
	found, _, err := ctx.FindObjects(sh, 2)
	if ferr := ctx.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	return found, err
}

// with runs f on a session of the pool.
func (p *PKCS11) with(f func(pkcs11.SessionHandle) error) error {
	sh := <-p.pool
	defer func() { p.pool <- sh }()
	return f(sh)
}

// Token is the token's label.
func (p *PKCS11) Token() string { return p.uri.Token }

// Current implements store.KeyProvider: the URI's object.
func (p *PKCS11) Current() string { return p.uri.Object }

// Wrap implements store.KeyProvider: the token encrypts dek under the KEK
// labelled id.
func (p *PKCS11) Wrap(_ context.Context, id string, dek []byte) ([]byte, error) {
	h, err := p.key(id)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, gcmIVLen)
	rand.Read(iv)
	var out []byte
	err = p.with(func(sh pkcs11.SessionHandle) error {
		params := pkcs11.NewGCMParams(iv, store.DataKeyAAD(id), gcmTagBits)
		defer params.Free()
		if err := p.ctx.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, h); err != nil {
			return err
		}
		ct, err := p.ctx.Encrypt(sh, dek)
		if err != nil {
			return err
		}
		// Some tokens choose the IV themselves and write it back.
		if got := params.IV(); len(got) == gcmIVLen {
			iv = got
		}
		out = append(iv, ct...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kms: token %q: wrap under %q: %w", p.uri.Token, id, err)
	}
	return out, nil
}

// Unwrap implements store.KeyProvider.
func (p *PKCS11) Unwrap(_ context.Context, id string, wrapped []byte) ([]byte, error) {
	h, err := p.key(id)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < gcmIVLen+gcmTagBits/8 {
		return nil, fmt.Errorf("%w: wrapped data key of %d bytes", store.ErrSealBroken, len(wrapped))
	}
	var dek []byte
	var decErr error
	err = p.with(func(sh pkcs11.SessionHandle) error {
		params := pkcs11.NewGCMParams(wrapped[:gcmIVLen], store.DataKeyAAD(id), gcmTagBits)
		defer params.Free()
		if err := p.ctx.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, h); err != nil {
			return err
		}
		dek, decErr = p.ctx.Decrypt(sh, wrapped[gcmIVLen:])
		return nil
	})
	if err != nil { // the token failed, not the seal
		return nil, fmt.Errorf("kms: token %q: unwrap under %q: %w", p.uri.Token, id, err)
	}
	if decErr != nil {
		// What the key did not seal: a seal broken, or another key. Tokens
		// differ in what they say (SoftHSM2: CKR_GENERAL_ERROR; the
		// standard: CKR_ENCRYPTED_DATA_INVALID).
		return nil, fmt.Errorf("%w: the data key does not unwrap under %q on token %q: %v", store.ErrSealBroken, id, p.uri.Token, decErr)
	}
	return dek, nil
}

// Close logs out, closes the sessions and unloads the module; later calls
// do nothing. No other call may be in progress or follow.
func (p *PKCS11) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.close() })
	return p.closeErr
}

func (p *PKCS11) close() error {
	if p.pool != nil {
		close(p.pool)
		first := true
		for sh := range p.pool {
			if first {
				_ = p.ctx.Logout(sh)
				first = false
			}
			_ = p.ctx.CloseSession(sh)
		}
	}
	return p.finalize()
}

func (p *PKCS11) finalize() error {
	err := p.ctx.Finalize()
	p.ctx.Destroy()
	return err
}

// GenerateKey makes the URI's object on its token: a 256-bit AES key that
// never leaves it (sensitive, not extractable), usable only to encrypt and
// decrypt (PKCS #11 v2.40 2.10.4, CKM_AES_KEY_GEN). A key of that label
// already there is an error: labels name the KEKs, and a record needs the
// exact key that sealed it. Rotating is generating a key under a new label
// and pointing blob_kms at it; the old ones stay for the old records.
func GenerateKey(uri URI) error {
	p, err := openSession(uri)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.with(func(sh pkcs11.SessionHandle) error {
		found, err := findKeys(p.ctx, sh, uri.Object)
		if err != nil {
			return fmt.Errorf("kms: token %q: %w", uri.Token, err)
		}
		if len(found) > 0 {
			return fmt.Errorf("kms: token %q already holds a key labelled %q; choose a new label", uri.Token, uri.Object)
		}
		_, err = p.ctx.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, kekBits/8),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, uri.Object),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		})
		if err != nil {
			return fmt.Errorf("kms: token %q: generate key %q: %w", uri.Token, uri.Object, err)
		}
		return nil
	})
}
