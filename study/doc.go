// Package study decides when a study is complete and what runs on it.
//
// [Assembler] watches the index's study activity (store.Work): a study is
// complete after its quiet period — the silence since its last instance,
// per routing rule — or sooner, once the DIMSE association that carried
// it is released and a shorter silence follows ([Assembler.Released]).
// Its series are then matched against the routing rules ([Rule], first
// match per series wins; [DefaultRules] send DX/CR chest radiographs to
// chest X-ray triage and head CT to hemorrhage detection), and one job
// per model is recorded with the evaluation in one transaction. An
// unmatched study is recorded with the reasons, not run.
//
// Instances that arrive after an evaluation make the study pending again;
// its next evaluation creates a new revision of a model's job only when
// that model's input changed (a digest of the series' instances), so a
// duplicate or an unrelated series re-runs nothing. Everything lives in
// the index: a restart resumes pending studies after their silence.
package study
