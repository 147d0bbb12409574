package dimse

import (
	"net/netip"
	"slices"

	"github.com/radgate/radgate/dcm"
)

// Policy decides which associations an SCP accepts.
type Policy struct {
	// AETitle is our AE title; the Called AE Title must equal it unless
	// AnyCalledAE is set.
	AETitle     string
	AnyCalledAE bool
	// AllowedCallingAEs, when not empty, lists the Calling AE Titles
	// accepted; others are rejected with calling-AE-title-not-recognized.
	AllowedCallingAEs []string
	// AllowedPeers, when not empty, lists the network prefixes accepted.
	AllowedPeers []netip.Prefix
	// MaxAssociations bounds concurrent associations; the next one is
	// rejected (transient) with local-limit-exceeded. 0 means the default.
	MaxAssociations int
}

// checkPeer reports whether addr may open associations.
func (p *Policy) checkPeer(addr netip.Addr) bool {
	if len(p.AllowedPeers) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, pfx := range p.AllowedPeers {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// rejectFor returns the A-ASSOCIATE-RJ an RQ earns under the policy, or nil.
// Reasons follow PS3.8 Table 9-21.
func (p *Policy) rejectFor(rq *AssociateRQ, peer netip.Addr) (*AssociateRJ, string) {
	switch {
	case rq.ProtocolVersion&protocolVersion == 0:
		return &AssociateRJ{RejectPermanent, RejectSourceACSE, RejectProtocolVersionUnsupported}, "protocol version not supported"
	case rq.ApplicationContext != applicationContextName:
		return &AssociateRJ{RejectPermanent, RejectSourceUser, RejectApplicationContextUnknown}, "application context not supported"
	case !p.checkPeer(peer):
		return &AssociateRJ{RejectPermanent, RejectSourceUser, RejectNoReason}, "peer address not allowed"
	case !p.AnyCalledAE && rq.CalledAE != p.AETitle:
		return &AssociateRJ{RejectPermanent, RejectSourceUser, RejectCalledAENotRecognized}, "called AE title not recognized"
	case len(p.AllowedCallingAEs) > 0 && !slices.Contains(p.AllowedCallingAEs, rq.CallingAE):
		return &AssociateRJ{RejectPermanent, RejectSourceUser, RejectCallingAENotRecognized}, "calling AE title not allowed"
	case rq.UserInfo.MaxLength != 0 && rq.UserInfo.MaxLength < minPeerPDULength:
		return &AssociateRJ{RejectPermanent, RejectSourceUser, RejectNoReason}, "maximum PDU length too small"
	}
	return nil, ""
}

// supportedAbstractSyntax reports whether we serve an abstract syntax as SCP.
func supportedAbstractSyntax(uid string) bool {
	return uid == dcm.VerificationSOPClass || dcm.IsStorageSOPClass(uid)
}

// negotiateContexts answers each proposed presentation context (PS3.8
// 9.3.3.2). A transfer syntax is accepted as sent: we take the first one
// the requestor proposes that we know, so compressed data is stored in the
// syntax it arrived in.
func negotiateContexts(rq []PresentationContextRQ) ([]PresentationContextAC, map[byte]presentationContext) {
	ac := make([]PresentationContextAC, 0, len(rq))
	accepted := make(map[byte]presentationContext, len(rq))
	for _, pc := range rq {
		res := PresentationContextAC{ID: pc.ID, Result: ResultAbstractSyntaxNotSupported}
		switch {
		case pc.ID%2 == 0 || accepted[pc.ID].id != 0:
			res.Result = ResultNoReason // IDs are odd and unique (PS3.8 9.3.2.2)
		case supportedAbstractSyntax(pc.AbstractSyntax):
			res.Result = ResultTransferSyntaxNotSupported
			for _, ts := range pc.TransferSyntaxes {
				if _, ok := dcm.LookupTransferSyntax(ts); ok {
					res.Result, res.TransferSyntax = ResultAcceptance, ts
					break
				}
			}
		}
		if res.Result == ResultAcceptance {
			accepted[pc.ID] = presentationContext{id: pc.ID, abstractSyntax: pc.AbstractSyntax, transferSyntax: res.TransferSyntax}
		} else if len(pc.TransferSyntaxes) > 0 {
			res.TransferSyntax = pc.TransferSyntaxes[0]
		}
		ac = append(ac, res)
	}
	return ac, accepted
}

// answerUserInfo builds our User Information for the AC (PS3.7 D.3.3).
func answerUserInfo(rq *UserInfo, maxPDU uint32) UserInfo {
	u := UserInfo{
		MaxLength:                 maxPDU,
		ImplementationClassUID:    dcm.ImplementationClassUID,
		ImplementationVersionName: dcm.ImplementationVersionName,
	}
	if rq.AsyncOps != nil {
		// We perform operations one at a time (PS3.7 D.3.3.3).
		u.AsyncOps = &AsyncOps{MaxInvoked: 1, MaxPerformed: 1}
	}
	for _, rs := range rq.RoleSelections {
		// We act as SCP only: the requestor keeps its SCU role (PS3.7 D.3.3.4).
		u.RoleSelections = append(u.RoleSelections, RoleSelection{SOPClassUID: rs.SOPClassUID, SCU: rs.SCU})
	}
	if rq.UserIdentity != nil && rq.UserIdentity.PositiveResponseRequested {
		// Identity is tolerated, not verified: an empty server response.
		u.UserIdentityResponse = []byte{}
	}
	return u
}
