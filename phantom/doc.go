// Package phantom writes synthetic, standards-valid DICOM images for
// training and testing honest reference models: synthetic phantoms — not
// for clinical use. No real person is depicted; every file says so in its
// study and series descriptions, image and patient comments (Notice), and
// carries an invented patient (PatientName PHANTOM^CXR^<seed> or
// PHANTOM^CTHEAD^<seed>, PatientID PH-<kind>-<seed>) so that tests can
// grep logs for these names to prove no patient data leaks.
//
// Entry points: a Spec (Kind, Finding, Seed, Slices) is checked by
// Spec.Validate and rendered by Generate into Instances, each a complete
// Part 10 file in explicit VR little endian with its SOP Instance UID and
// whether it shows the finding (Positive). Spec.StudyInstanceUID is the
// study's UID without rendering anything.
//
//   - KindCXR: one Digital X-Ray Image for Presentation (PS3.3 A.26), a PA
//     chest of 2048×2048 12-bit pixels at 0.17 mm: body outline,
//     mediastinum and heart, two lungs with branching vessels, ribs,
//     clavicles, spine, diaphragm domes, quantum noise. Findings:
//     Pneumothorax (the lung fallen away from the apex and lateral wall,
//     a thin visceral pleural line, no vessels beyond it) and Effusion
//     (fluid at a base with a meniscus, hiding the costophrenic angle).
//   - KindCTHead: one series of CT Image Storage (PS3.3 A.3), 512×512
//     slices at 0.45 mm covering 120 mm from the skull base to the vertex,
//     stored values HU+1024: scalp, skull, CSF, grey and white matter,
//     ventricles by level, skull base and orbits, harmless calcifications
//     in some heads. Finding: Hemorrhage, an intraparenchymal blob or a
//     subdural crescent over a run of slices (50–90 HU).
//
// Everything is deterministic: the same Spec yields byte-identical files.
// Randomness comes from PCG streams seeded by SHA-256 of the spec; UIDs
// are 2.25 UIDs derived from (kind, finding, seed, slice). Anatomy,
// exposure and noise depend only on the kind and seed, so a seed's normal
// and abnormal studies differ only where the finding is, and size, side,
// location and density of findings vary from subtle to obvious.
package phantom
