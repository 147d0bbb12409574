//go:build race

package models_test

// heldOutCount under the race detector, which makes phantom generation
// several times slower: a smaller smoke run; the reported figures come
// from a run without -race (go test ./models -run TestReferenceModels -v).
const heldOutCount = 10
