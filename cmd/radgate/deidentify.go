package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/deident"
)

const deidentifySynopsis = "--out DIR [--retain-uids] [--retain-device] [--retain-institution] [--retain-patient-characteristics] [--retain-dates full|modified] [--clean-descriptors] [--data-dir DIR] PATH..."

// deidentifyCmd writes a de-identified copy (PS3.15 Annex E) of every
// DICOM file under the paths into a folder, keeping the re-identification
// map under the data folder. Failures are named by path, never by what
// the file holds.
func deidentifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("deidentify", fmt.Sprintf("usage: radgate deidentify %s\n", deidentifySynopsis), stderr)
	out := fs.String("out", "", "folder to write the de-identified files into (created if missing)")
	var opt deident.Options
	fs.BoolVar(&opt.RetainUIDs, "retain-uids", false, "keep the UIDs (Retain UIDs Option)")
	fs.BoolVar(&opt.RetainDeviceIdentity, "retain-device", false, "keep device identity (Retain Device Identity Option)")
	fs.BoolVar(&opt.RetainInstitutionIdentity, "retain-institution", false, "keep institution identity (Retain Institution Identity Option)")
	fs.BoolVar(&opt.RetainPatientCharacteristics, "retain-patient-characteristics", false, "keep sex, age, size, weight … (Retain Patient Characteristics Option)")
	fs.BoolVar(&opt.CleanDescriptors, "clean-descriptors", false, "claim the Clean Descriptors Option (descriptors are removed)")
	dates := fs.String("retain-dates", "", "full: keep dates; modified: move them back by a per-patient offset")
	dataDir := fs.String("data-dir", defaultDataDir(), "data folder; the map is kept in its deident/ folder (env "+config.EnvPrefix+"DATA_DIR)")
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	switch *dates {
	case "":
	case "full":
		opt.RetainLongFullDates = true
	case "modified":
		opt.RetainLongModifiedDates = true
	default:
		fmt.Fprintf(stderr, "radgate deidentify: --retain-dates %q: want full or modified\n", *dates)
		return 2
	}
	if *out == "" || len(paths) == 0 {
		fs.Usage()
		return 2
	}
	files, err := dicomFiles(paths)
	if err != nil {
		fmt.Fprintf(stderr, "radgate deidentify: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		fmt.Fprintf(stderr, "radgate deidentify: %v\n", err)
		return 1
	}
	m, err := deident.OpenMap(filepath.Join(*dataDir, "deident"))
	if err != nil {
		fmt.Fprintf(stderr, "radgate deidentify: %v\n", err)
		return 1
	}
	defer m.Close()
	d, err := deident.New(opt, m)
	if err != nil {
		fmt.Fprintf(stderr, "radgate deidentify: %v\n", err)
		return 2
	}
	failed := 0
	for i, p := range files {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "radgate deidentify: %v\n", err)
			return 1
		}
		if err := deidentifyFile(d, p, *out); err != nil {
			failed++
			fmt.Fprintf(stderr, "radgate deidentify: %s: %v\n", p, err)
		}
		fmt.Fprintf(stderr, "%d/%d files\n", i+1, len(files))
	}
	fmt.Fprintf(stdout, "de-identified %d of %d files into %s (%d failed)\n", len(files)-failed, len(files), *out, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// defaultDataDir is the gateway's data_dir default, or its environment
// setting.
func defaultDataDir() string {
	if v := os.Getenv(config.EnvPrefix + "DATA_DIR"); v != "" {
		return v
	}
	return "./var"
}

// dicomFiles lists the regular files of paths, walking folders.
func dicomFiles(paths []string) ([]string, error) {
	var files []string
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// deidentifyFile writes the de-identified copy of p as
// DIR/<new SOP Instance UID>.dcm: to a temporary file first, renamed once
// complete, so a failure leaves no partial output.
func deidentifyFile(d *deident.Deidentifier, p, dir string) error {
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".deidentify-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	rec, err := d.File(in, st.Size(), tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !uidName(rec.SOPInstanceUID) {
		// Under --retain-uids the UID is the input's: never a path.
		return fmt.Errorf("SOP Instance UID is not a UID (PS3.5 9.1), cannot name a file")
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, rec.SOPInstanceUID+".dcm"))
}

// uidName reports whether s has the form of a UID (PS3.5 9.1: digits and
// dots, at most 64), and so is safe as a file name.
func uidName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for _, c := range s {
		if c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
