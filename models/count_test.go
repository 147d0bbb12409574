//go:build !race

package models_test

// heldOutCount positive and as many negative studies per model: the
// issue's acceptance evaluation.
const heldOutCount = 50
