// Package dsbuild builds DICOM data sets element by element on top of
// github.com/suyashkumar/dicom and encodes them as Part 10 files, for the
// packages that write instances of their own: the synthetic phantoms and
// the structured reports.
//
// Entry points:
//
//   - [Builder] collects the elements of a data set or of a sequence item
//     ([Builder.Add], [Builder.Str], [Builder.Ints], [Builder.Floats],
//     [Builder.Seq], [Builder.Element]) and keeps the first error for
//     [Encode], so that a long run of additions needs one check at the end.
//   - [Builder.FileMeta] adds the File Meta Information (PS3.10 7.1) of
//     an explicit VR little endian file; [CodeItem] is a code sequence
//     item (PS3.3 8.8).
//   - [Encode] sorts the elements by tag, items included (PS3.5 7.1: a
//     data set is in ascending tag order; suyashkumar/dicom writes elements
//     in the order it is given them), rejects a tag given twice, and writes
//     the Part 10 file.
//   - [DS] and [DSList] format Decimal String values (PS3.5 6.2).
package dsbuild
