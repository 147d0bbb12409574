// Package imaging is radgate's DICOM-aware preprocessing: from one DICOM
// instance to the float32 tensors a model takes. The same code serves
// inference and writes training tensors, so a model sees identical input
// in both.
//
// Entry points:
//
//   - Load / LoadFile decode a Part 10 stream (PS3.10 7.1) to an Image:
//     identifying and geometry attributes, and every frame as modality
//     values (Modality LUT, PS3.3 C.11.1: RescaleSlope/RescaleIntercept).
//     Native transfer syntaxes are decoded here: implicit and explicit VR
//     little endian, explicit VR big endian and deflated explicit VR
//     little endian (PS3.5 A.1–A.3, A.5). Encapsulated pixel data (PS3.5
//     A.4) is split into frames (Basic Offset Table, or one fragment per
//     frame, or all fragments for a single frame) and each frame goes
//     through codec.Decode. Stored samples honour BitsAllocated,
//     BitsStored, HighBit and PixelRepresentation (PS3.5 8.1.1).
//   - Image.Frame returns one frame's modality values (luminance for
//     colour instances).
//   - Recipe (the manifest's preprocessing section) with Validate, Len and
//     Apply: per channel the linear VOI window of PS3.3 C.11.2.1.2.1 to
//     [0,1], MONOCHROME1 inversion (bright means dense for every model),
//     an antialiased separable resize ("stretch" or "letterbox"), then
//     per-channel normalization; output C×H×W.
//   - SortSlices orders a series along its slice normal (PS3.3 C.7.6.2.1.1).
//
// Errors wrap the sentinels ErrNotDICOM, ErrNotImage,
// ErrUnsupportedTransferSyntax, ErrUnsupportedPixelFormat, ErrCorrupt,
// ErrTooLarge, ErrFrame, ErrRecipe and ErrGeometry; match with errors.Is.
// Hostile input yields an error, never a panic: every declared element
// length is checked against the bytes present (walker) before
// suyashkumar/dicom parses the data set, image sizes are checked against
// the Max* limits before allocation, and a panic inside that parser is
// recovered at its single call site (parse).
//
// Not handled: Enhanced multi-frame per-frame geometry (functional
// groups), the Extended Offset Table, PALETTE COLOR, BitsAllocated 1,
// Modality LUT Sequences and float pixel data.
package imaging
