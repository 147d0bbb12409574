package peertest

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite" // the same SQLite radgate's store uses; read-only here

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/store"
)

// What radgate keeps under RADGATE_DATA_DIR (see store/): a log of Part 10
// records in segment files, read through the store package (LogRecords,
// OpenBlobFile), and the SQLite index, read here directly.
const (
	IndexFile  = "index.db"
	IndexTable = "instance"
	UIDColumn  = "sop_instance_uid"
)

// IndexedUIDs returns the SOP Instance UIDs in the index of the store at
// dataDir (table instance, column sop_instance_uid). The database is opened
// read-only, so radgate may be running.
func IndexedUIDs(dataDir string) (map[string]bool, error) {
	db, err := openIndex(dataDir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT ` + UIDColumn + ` FROM ` + IndexTable)
	if err != nil {
		return nil, fmt.Errorf("peertest: index query: %w", err)
	}
	defer rows.Close()
	uids := map[string]bool{}
	for rows.Next() {
		var uid string
		if err := rows.Scan(&uid); err != nil {
			return nil, err
		}
		uids[uid] = true
	}
	return uids, rows.Err()
}

func openIndex(dataDir string) (*sql.DB, error) {
	path := filepath.Join(dataDir, IndexFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("peertest: index: %w", err)
	}
	// mode=ro: never create or change it; the busy timeout rides out a
	// writer's checkpoint.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=ro&_pragma=busy_timeout(5000)"
	return sql.Open("sqlite", dsn)
}

// Stored copies every committed record in the log of the store at dataDir
// into dir as a Part 10 file and returns their paths. Records are checked
// (CRC) as radgate's own replay checks them, so a torn record is never
// returned; radgate may be running.
func Stored(dataDir, dir string) ([]string, error) {
	keys, err := store.LogRecords(dataDir)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, key := range keys {
		p := filepath.Join(dir, key+".dcm")
		if err := exportBlob(dataDir, key, p); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func exportBlob(dataDir, key, path string) error {
	rc, err := store.OpenBlobFile(dataDir, key, nil)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Ingest stores a Part 10 file into st as a C-STORE would: in gives the
// reception details (calling AE, source…), the file meta its SOP Class,
// SOP Instance and transfer syntax. It returns the instance record.
func Ingest(t testing.TB, st *store.Store, part10 []byte, in store.Incoming) store.Instance {
	t.Helper()
	meta, data, err := dcm.OpenPart10(bytes.NewReader(part10))
	if err != nil {
		t.Fatal(err)
	}
	in.SOPClassUID, in.SOPInstanceUID, in.TransferSyntaxUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID
	res, err := st.Ingest(t.Context(), in, data)
	if err != nil {
		t.Fatal(err)
	}
	return res.Instance
}
