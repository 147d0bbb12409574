package kms

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/store"
)

func mustURI(t *testing.T, s string) URI {
	t.Helper()
	u, err := ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPKCS11 runs against a real token (SoftHSM2): a KEK generated on it
// wraps and unwraps data keys, never leaves it, and refuses what it did
// not seal; labels are unique; a wrong PIN and an unknown label are
// refused.
func TestPKCS11(t *testing.T) {
	ctx := context.Background()
	h := peertest.NewSoftHSM(t)
	uri := mustURI(t, h.URI("kek-1"))
	if _, err := Open(uri); !errors.Is(err, store.ErrUnknownKey) {
		t.Fatalf("Open before the key exists: %v, want ErrUnknownKey", err)
	}
	if err := GenerateKey(uri); err != nil {
		t.Fatal(err)
	}
	if err := GenerateKey(uri); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("a second key of the same label: %v", err)
	}
	p, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Current() != "kek-1" {
		t.Errorf("Current = %q", p.Current())
	}
	dek := bytes.Repeat([]byte{7}, 32)
	w1, err := p.Wrap(ctx, "kek-1", dek)
	if err != nil {
		t.Fatal(err)
	}
	w2, _ := p.Wrap(ctx, "kek-1", dek)
	if bytes.Equal(w1, w2) || bytes.Contains(w1, dek) {
		t.Error("wrapping is not randomised, or leaves the data key in clear")
	}
	if got, err := p.Unwrap(ctx, "kek-1", w1); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	bad := bytes.Clone(w1)
	bad[len(bad)-1] ^= 1
	if _, err := p.Unwrap(ctx, "kek-1", bad); !errors.Is(err, store.ErrSealBroken) {
		t.Errorf("Unwrap of a changed wrapped key: %v, want ErrSealBroken", err)
	}
	if _, err := p.Unwrap(ctx, "kek-1", w1[:10]); !errors.Is(err, store.ErrSealBroken) {
		t.Errorf("Unwrap of a short wrapped key: %v, want ErrSealBroken", err)
	}
	if _, err := p.Unwrap(ctx, "kek-0", w1); !errors.Is(err, store.ErrUnknownKey) {
		t.Errorf("Unwrap under a label the token lacks: %v, want ErrUnknownKey", err)
	}

	// The key's value cannot be read out of the token.
	err = p.with(func(sh pkcs11.SessionHandle) error {
		k, err := p.key("kek-1")
		if err != nil {
			return err
		}
		attrs, err := p.ctx.GetAttributeValue(sh, k, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		})
		if err != nil {
			return err
		}
		if !bytes.Equal(attrs[0].Value, []byte{1}) || !bytes.Equal(attrs[1].Value, []byte{0}) {
			t.Errorf("the KEK is not sensitive and non-extractable: %v %v", attrs[0].Value, attrs[1].Value)
		}
		if _, err := p.ctx.GetAttributeValue(sh, k, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
			t.Error("the token gave the KEK's value out")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()

	wrong := uri
	wrong.PINSource = t.TempDir() + "/pin"
	os.WriteFile(wrong.PINSource, []byte("0000\n"), 0o600)
	if _, err := Open(wrong); err == nil || !strings.Contains(err.Error(), "login") {
		t.Errorf("Open with a wrong PIN: %v", err)
	}
	os.Chmod(wrong.PINSource, 0o644)
	if _, err := Open(wrong); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Open with a PIN file others may read: %v", err)
	}
	other := uri
	other.Token = "no-such-token"
	if _, err := Open(other); err == nil || !strings.Contains(err.Error(), "no token labelled") {
		t.Errorf("Open of an unknown token: %v", err)
	}
}

// ingestPhantom stores a CXR phantom as C-STORE would.
func ingestPhantom(t *testing.T, s *store.Store, seed uint64) store.Instance {
	t.Helper()
	ins, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.None, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return peertest.Ingest(t, s, ins[0].Data, store.Incoming{Source: "dimse"})
}

// TestPKCS11SealsTheStore: a store sealed under a KEK on the token reads
// back after a restart; after a rotation (a new label, blob_kms pointed at
// it) new records are sealed under it and the old ones still read, and
// without the token none does.
func TestPKCS11SealsTheStore(t *testing.T) {
	ctx := context.Background()
	h := peertest.NewSoftHSM(t)
	dir := t.TempDir()
	open := func(object string) (*store.Store, *PKCS11) {
		t.Helper()
		uri := mustURI(t, h.URI(object))
		p, err := Open(uri)
		if errors.Is(err, store.ErrUnknownKey) {
			if err = GenerateKey(uri); err == nil {
				p, err = Open(uri)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(ctx, store.Config{DataDir: dir, Keys: p}, nil, nil)
		if err != nil {
			p.Close()
			t.Fatal(err)
		}
		return s, p
	}
	s, p := open("kek-2026")
	first := ingestPhantom(t, s, 41)
	s.Close()
	p.Close()

	s, p = open("kek-2027") // rotated: a new key, the setting changed
	second := ingestPhantom(t, s, 42)
	for _, in := range []store.Instance{first, second} {
		got, err := s.Instance(ctx, in.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := s.OpenBlob(ctx, got.BlobKey)
		if err != nil {
			t.Fatalf("instance sealed under %s: %v", in.SOPInstanceUID, err)
		}
		b := new(bytes.Buffer)
		_, err = b.ReadFrom(rc)
		rc.Close()
		if err != nil || !bytes.Contains(b.Bytes(), []byte(in.SOPInstanceUID)) {
			t.Errorf("instance %s does not read back: %v", in.SOPInstanceUID, err)
		}
	}
	s.Close()
	p.Close()
	keys, err := store.LogRecords(dir)
	if err != nil || len(keys) != 2 {
		t.Fatalf("log records %v, %v", keys, err)
	}
	if _, err := store.OpenBlobFile(dir, keys[0], nil); !errors.Is(err, store.ErrKeysRequired) {
		t.Errorf("reading the sealed store without the token: %v, want ErrKeysRequired", err)
	}
}

// BenchmarkWrap is the per-instance cost of sealing: one data key wrapped
// and unwrapped, by the token (SoftHSM2) and, as the baseline, by a key
// file in radgate's memory.
func BenchmarkWrap(b *testing.B) {
	ctx := context.Background()
	h := peertest.NewSoftHSM(b)
	uri, err := ParseURI(h.URI("kek-bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := GenerateKey(uri); err != nil {
		b.Fatal(err)
	}
	p, err := Open(uri)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	kf, err := store.GenerateKeyFile(b.TempDir() + "/keys.json")
	if err != nil {
		b.Fatal(err)
	}
	dek := bytes.Repeat([]byte{1}, 32)
	for _, kp := range []struct {
		name string
		p    store.KeyProvider
	}{{"keyfile", kf}, {"pkcs11", p}} {
		b.Run(kp.name, func(b *testing.B) {
			for b.Loop() {
				w, err := kp.p.Wrap(ctx, kp.p.Current(), dek)
				if err == nil {
					_, err = kp.p.Unwrap(ctx, kp.p.Current(), w)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
