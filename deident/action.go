package deident

// Action is an action code of PS3.15 Table E.1-1, named after its code in
// PS3.15 E.1.1 so that the table reads like the standard's.
type Action uint8

const (
	// None is an empty cell of an option column: the option does not
	// change what the Basic Profile does.
	None Action = iota
	K           // keep (unchanged for non-sequence attributes, cleaned for sequences)
	X           // remove
	Z           // replace with a zero length value (or a dummy)
	D           // replace with a non-zero length dummy value consistent with the VR
	C           // clean: replace with values of similar meaning without identifying information
	U           // replace with a non-zero length UID, consistent within the set of instances
	ZD          // Z unless D is required to maintain IOD conformance
	XZ          // X unless Z is required
	XD          // X unless D is required
	XZD         // X unless Z or D is required
	XZU         // X unless Z or replacement of contained instance UIDs is required
)

var actionNames = [...]string{None: "", K: "K", X: "X", Z: "Z", D: "D", C: "C", U: "U",
	ZD: "Z/D", XZ: "X/Z", XD: "X/D", XZD: "X/Z/D", XZU: "X/Z/U*"}

// String returns the code as PS3.15 writes it ("X/Z/D"); "" for None.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "?"
}

// step is what Dataset does to one attribute, once the options have been
// applied to a row and its compound code resolved.
type step uint8

const (
	stepKeep      step = iota // keep; a sequence is kept with every item cleaned
	stepRemove                // X
	stepZero                  // Z: zero length (a sequence: no items)
	stepDummy                 // D: a fixed dummy (a sequence: one empty item)
	stepUID                   // U: HMAC-derived UID
	stepShift                 // C under Modified Dates: DA/DT moved by the patient's offset
	stepPseudonym             // Z on Patient ID, Patient's Name, Accession Number: a keyed pseudonym
)

// Compound codes resolve to the choice that keeps a data set conformant
// to any IOD without knowing which IOD it is (the table's "unless
// required" cannot be decided per attribute otherwise): a code that
// allows D becomes D, X/Z becomes Z, and X/Z/U* keeps the sequence with
// its items cleaned, which replaces the instance UIDs inside (U) and
// keeps references consistent.
func basicStep(a Action) step {
	switch a {
	case K, XZU:
		return stepKeep
	case Z, XZ:
		return stepZero
	case D, ZD, XD, XZD:
		return stepDummy
	case U:
		return stepUID
	default: // X, and C where no supported option gives it a meaning
		return stepRemove
	}
}
