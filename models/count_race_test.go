//go:build race

package models_test

// heldOutCount under the race detector: none. Phantom generation is
// several times slower there and a smaller sample says nothing about
// accuracy, so `make test` runs TestReferenceModels again without -race.
const heldOutCount = 0
