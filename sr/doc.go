// Package sr writes the results of an AI model on a study as DICOM
// structured reports that file into the study itself: a Comprehensive SR
// following PS3.16 TID 1500 "Measurement Report" (PS3.3 A.35.3) and a Key
// Object Selection Document, TID 2010 (PS3.3 A.35.4), of the images that
// show the positive findings.
//
// Entry points:
//
//   - [Report] is what is written: one source instance of the study (whose
//     Patient, General Study, Patient Study and clinical trial modules are
//     copied as they are, Specific Character Set included), the
//     [Algorithm] (the model), the [Equipment] (radgate), the procedure
//     ([ProcedureFor]), the [Finding]s with their probabilities and
//     [ImageRef]s, every image read, and the revision.
//   - [WriteSR] and [WriteKOS] return a [Document]: its UIDs and a Part 10
//     file in explicit VR little endian, elements sorted by tag at every
//     level (PS3.5 7.1).
//
// The SR's content tree (PS3.3 C.17.3, relationships as Table A.35.3-2
// allows):
//
//	CONTAINER (DCM 126000 "Imaging Measurement Report")   TID 1500
//	  HAS CONCEPT MOD  Language (en-US)                   TID 1204
//	  HAS OBS CONTEXT  Observer Type = Device, Device Observer UID,
//	                   Name, Manufacturer, Model Name, Serial Number  TID 1002, 1004
//	  HAS CONCEPT MOD  Procedure reported                 ProcedureFor
//	  CONTAINS Image Library > Image Library Group per series > IMAGE   TID 1600
//	  CONTAINS Imaging Measurements
//	    CONTAINS Measurement Group per finding            TID 1501
//	      Tracking Identifier (the label), Tracking Unique Identifier   TID 4108
//	      Finding = the concept
//	      Algorithm Name, Version, Parameters (sha256, threshold)        TID 4019
//	      NUM (DCM 111012 "Certainty of Finding") = probability, UCUM "1"
//	      CODE the concept = (SCT 52101004 "Present") or (SCT 2667000 "Absent")
//	      IMAGE (SCT 260753009 "Source") per supporting image
//	  CONTAINS TEXT (DCM 121106 "Comment"): preliminary, AI-generated, not
//	                   for clinical use without a radiologist's review
//
// The SR is PRELIMINARY, COMPLETE and UNVERIFIED; a revision after the
// first names its predecessor. Every UID derives from the study, the
// algorithm name and version (the series, shared by all revisions) and the
// revision (the instance) through dcm.HashUID, so a retry rewrites the
// same instance instead of adding one.
//
// Errors wrap [ErrReport], [ErrSource] or [ErrNoKeyImages] and never quote
// the source's values: they hold patient data.
package sr
