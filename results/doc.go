// Package results runs the inference jobs that study assembly creates and
// turns their findings into what goes back to the PACS: [Runner] claims
// jobs from the store (most urgent first), runs the model over the job's
// series through the inference engine, writes a TID 1500 SR (package sr)
// — and for a positive CT a KOS of the key slices — and queues one
// delivery per object and destination in the same transaction that marks
// the job done. The stored [Result] keeps the model's answer and the
// objects' UIDs.
//
// A job interrupted by a stop or a crash runs again at the next start;
// its objects' UIDs derive from (study, model version, revision), so the
// second run queues the same objects, and the outbox does not queue an
// object twice for a destination.
package results
