package peertest

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the same SQLite radgate's store uses; read-only here
)

// What radgate keeps under RADGATE_DATA_DIR (see store/): content-addressed
// Part 10 blobs, the SQLite index, and the temp folder where a blob is
// written before it is renamed into place.
const (
	BlobsDir   = "blobs"
	IndexFile  = "index.db"
	TmpDir     = "tmp"
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

// Blobs lists every file under dataDir/blobs, recursively.
func Blobs(dataDir string) ([]string, error) {
	return listFiles(filepath.Join(dataDir, BlobsDir), false)
}

// TmpFiles lists the files under dataDir/tmp that hold data. Empty files
// are the store's spares, made ahead of need; only a file holding data is
// something an ingest left behind.
func TmpFiles(dataDir string) ([]string, error) {
	return listFiles(filepath.Join(dataDir, TmpDir), true)
}

// listFiles walks root (absent: no files), keeping only non-empty files
// when withData is set.
func listFiles(root string, withData bool) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && os.IsNotExist(err) {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if withData {
			if fi, err := d.Info(); err != nil || fi.Size() == 0 {
				return err
			}
		}
		files = append(files, p)
		return nil
	})
	return files, err
}

// FileSHA256 is the hex SHA-256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckBlobName verifies a content-addressed blob: its base name, without
// extension, is the SHA-256 of its content.
func CheckBlobName(path string) error {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	sum, err := FileSHA256(path)
	if err != nil {
		return err
	}
	if name != sum {
		return fmt.Errorf("blob %s: content sha256 is %s, not its name", path, sum)
	}
	return nil
}
