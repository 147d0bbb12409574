// Package dimse implements the DICOM upper layer protocol (PS3.8) and the
// DIMSE message exchange (PS3.7) that PACS and modalities use to send images.
//
// Layers, bottom up:
//
//   - pdu.go: a pure, bounded codec for the seven PDU types of PS3.8 9.3
//     (A-ASSOCIATE-RQ/AC/RJ, P-DATA-TF, A-RELEASE-RQ/RP, A-ABORT). Every
//     length a peer declares is checked against a limit before anything is
//     allocated; decoding never panics.
//   - statemachine.go: the association state machine as the transition table
//     of PS3.8 Table 9-10 (states Sta1–Sta13, events Evt1–Evt19, actions
//     AE-n, DT-n, AR-n, AA-n). An event a state does not expect aborts the
//     association (AA-8), as the table prescribes.
//   - assoc.go: an Association owned by one goroutine: PDU I/O with the
//     ARTIM timer and an idle timeout, presentation-context negotiation
//     (negotiate.go) and typed abort reasons (AbortReason) that become metrics.
//   - command.go, message.go: the DIMSE command set (group 0000, always
//     Implicit VR Little Endian, PS3.7 6.3 and Annex E) and message framing
//     over PDVs. Data sets are streamed: a C-STORE data set reaches the
//     handler as an io.Reader that pulls P-DATA-TF PDUs from the connection
//     as it is read, so no data set is ever held whole in memory.
//   - server.go: the SCP (Server with Serve/Shutdown after net/http), with
//     the acceptance Policy (called/calling AE title, peer address, maximum
//     concurrent associations) and the C-ECHO and C-STORE services.
//   - client.go: the SCU (Dial, Echo, Store) that proposes one presentation
//     context per (SOP class, transfer syntax) pair and reuses one
//     association for many instances.
//
// The package knows nothing about storage or models: a StoreHandler decides
// what a received data set becomes and which DIMSE status answers it.
package dimse
