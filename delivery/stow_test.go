package delivery

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/store"
)

// TestOutboxSTOW delivers by STOW-RS to Orthanc's DICOMweb plugin; a
// DICOMweb destination that is down is retried like any other.
func TestOutboxSTOW(t *testing.T) {
	peertest.Require(t, "Orthanc", "orthanc-dicomweb")
	st := openStore(t)
	o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{})
	up := o.URL() + "/dicom-web"
	down := "http://127.0.0.1:" + strconv.Itoa(peertest.MustFreePort(t)) + "/dicom-web"
	ob, err := New(st.Work(), Config{CallingAE: "RADGATE", MaxAttempts: 100, Backoff: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Poll: 50 * time.Millisecond}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	job, _ := queue(t, st, up, down)
	run(t, ob)
	ob.Notify()
	waitState(t, st, job.ID, up, store.DeliveryDelivered, 20*time.Second)
	uids, err := o.SOPInstanceUIDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := st.Work().Deliveries(context.Background(), job.ID)
	if len(uids) != 1 || uids[ds[0].ObjectUID] == "" {
		t.Errorf("Orthanc holds %v; want the delivered instance %s", uids, ds[0].ObjectUID)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, _ = st.Work().Deliveries(context.Background(), job.ID)
		var d store.Delivery
		for _, x := range ds {
			if x.Destination == down {
				d = x
			}
		}
		if d.Attempts >= 2 && d.State == store.DeliveryPending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the down DICOMweb destination: %+v; want pending after retries", d)
		}
	}
}
