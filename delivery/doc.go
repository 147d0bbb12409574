// Package delivery sends results out of the store's durable outbox
// (store.Work): [Outbox] runs one worker per destination, so a PACS that
// is down delays only its own deliveries, never ingest or other
// destinations; failures wait an exponential backoff with jitter, and
// after the maximum of attempts a delivery is dead-lettered — kept,
// counted (radgate_outbox{state="dead"}) and logged as an error.
//
// [Parse] turns a destination into a [Sender]: dimse://AE@HOST:PORT is a
// C-STORE SCU (PS3.4 B.2) that carries a batch over one association;
// http(s)://HOST/PATH, a DICOMweb base URL, a STOW-RS client (PS3.18
// 10.5) that posts a batch in one request and reads from the response
// which instances were stored (a 4xx other than 408/409/429, or a failure
// reason other than out of resources, is not retried); mllp://HOST:PORT
// an HL7 v2 sender over MLLP that sends a batch over one connection, each
// message answered by its ACK before the next: AA/CA delivered, AE/CE
// retried, AR/CR dead-lettered at once (the worklist's messages to a RIS).
// Objects keep their SOP Instance UIDs, derived from (study, model
// version, revision), so a delivery repeated after a crash replaces the
// same instance at the PACS rather than adding a second one.
package delivery
