// Package fhir tells the EHR about studies and AI results in FHIR R4: a
// complete study becomes an ImagingStudy (with its Patient and a WADO-RS
// Endpoint), an inference result a preliminary DiagnosticReport with one
// Observation per finding and a Device for the algorithm.
//
// Deliveries go through the durable outbox (package delivery): a
// [Notification] is built when queued ([StudyNotification],
// [ReportNotification]), stored as JSON, and written later by [Client.Deliver]
// through [Client.Sender]. Every resource is written with a conditional
// update (PUT Type?identifier=system|value; FHIR R4 3.1.0.4.3) on an
// identifier derived from the study, the model, its version and the result
// revision, so a retry after a timeout or a crash finds and replaces the same
// resource rather than adding a second one.
//
// Errors: 5xx, 408, 429 and network failures are retriable; any other 4xx is
// [ErrRejected], which also wraps delivery.ErrPermanent so the outbox
// dead-letters it. A study whose patient the EHR does not know is
// [ErrPatientUnknown] (retriable) under [PatientDefer], or creates the
// Patient from the DICOM demographics under [PatientCreate].
//
// Nothing here logs or returns patient data: studies are logged as
// dcm.UIDRef hashes, and server error texts are cut to a few hundred bytes
// and never carry request bodies or URLs (their query holds the patient
// identifier).
package fhir
