package worklist

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/radgate/radgate/store"
)

// UPSSink sends a workitem, after each change of what another worklist
// manager shows (creation, priority, state, findings), to an external
// UPS-RS worklist manager through the outbox (delivery.UPSSender).
type UPSSink struct {
	// Destination is the outbox destination the gateway registered the
	// sender under ("ups+" and the DICOMweb base URL).
	Destination string
}

// DeliveryKind is the outbox kind of UPSSink's deliveries.
const DeliveryKind = "ups"

// Deliveries implements Sink: one delivery of the workitem as it is now,
// under an object UID unique to the change.
func (s UPSSink) Deliveries(w store.Workitem, events []store.WorklistEvent, _ *Result) ([]store.NewDelivery, error) {
	d, err := Dataset(w)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return []store.NewDelivery{{
		Destination: s.Destination, Kind: DeliveryKind, ObjectUID: w.UID + "@" + strconv.FormatInt(now.UnixNano(), 10),
		SOPClassUID: UPSPushSOPClass, Payload: b, ReadyAt: now,
	}}, nil
}
