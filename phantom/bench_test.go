package phantom

import "testing"

func BenchmarkGenerateCXR(b *testing.B) {
	for i := range b.N {
		if _, err := Generate(Spec{Kind: KindCXR, Finding: Pneumothorax, Seed: uint64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateCTHead(b *testing.B) {
	for i := range b.N {
		if _, err := Generate(Spec{Kind: KindCTHead, Finding: Hemorrhage, Seed: uint64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
