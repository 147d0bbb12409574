package phantom_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/radgate/radgate/phantom"
)

func ExampleGenerate() {
	spec := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 42, Slices: 12}
	insts, err := phantom.Generate(spec)
	if err != nil {
		log.Fatal(err)
	}
	var positive []int
	for i, inst := range insts {
		if inst.Positive {
			positive = append(positive, i+1)
		}
	}
	fmt.Println(len(insts), "slices, positive:", positive)
	fmt.Println(strings.HasPrefix(spec.StudyInstanceUID(), "2.25."), len(insts[0].Data) > 512*512*2)
	// Output:
	// 12 slices, positive: [5 6 7]
	// true true
}
