package dcm_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/radgate/radgate/dcm"
)

func Example() {
	// A Part 10 file: preamble, "DICM", file meta, then a data set with one
	// element, SOP Instance UID (0008,0018) UI "1.2.3", explicit VR LE.
	var file bytes.Buffer
	err := dcm.WriteFileMeta(&file, dcm.FileMeta{
		MediaStorageSOPClassUID:    "1.2.840.10008.5.1.4.1.1.7",
		MediaStorageSOPInstanceUID: "1.2.3",
		TransferSyntaxUID:          dcm.ExplicitVRLittleEndian,
	})
	if err != nil {
		log.Fatal(err)
	}
	file.Write([]byte{0x08, 0x00, 0x18, 0x00, 'U', 'I', 6, 0, '1', '.', '2', '.', '3', 0})

	meta, rest, err := dcm.OpenPart10(&file)
	if err != nil {
		log.Fatal(err)
	}
	ts, ok := dcm.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		log.Fatalf("unsupported transfer syntax %s", meta.TransferSyntaxUID)
	}
	attrs, err := dcm.ScanDataset(rest, ts, []dcm.Tag{dcm.SOPInstanceUID})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dcm.UIDName(meta.MediaStorageSOPClassUID), dcm.IsStorageSOPClass(meta.MediaStorageSOPClassUID))
	fmt.Println(dcm.SOPInstanceUID, attrs[dcm.SOPInstanceUID])
	// Output:
	// Secondary Capture Image Storage true
	// (0008,0018) 1.2.3
}
