// Package codec decodes compressed DICOM pixel data: one frame of an
// encapsulated transfer syntax (PS3.5 Section 8.2, Annex A.4) into native
// little-endian samples of Bits Allocated bits, samples of a pixel
// interleaved.
//
// Entry points: [Decode] (transfer syntax UID, the frame's concatenated
// fragments, the data set's [Params]) returns a [Frame]; [Supported] says
// whether a transfer syntax is handled. Errors wrap [ErrCorrupt] (the bytes
// do not decode to the declared frame) or [ErrUnsupported] (a variant this
// package does not decode), with the reason.
//
// Transfer syntaxes and how they are decoded:
//
//   - RLE Lossless 1.2.840.10008.1.2.5 (PS3.5 Annex G): pure Go; 8, 16 and
//     32 bits, 1 or 3 samples per pixel.
//   - JPEG Baseline 1.2.840.10008.1.2.4.50, Extended 1.2.840.10008.1.2.4.51,
//     Lossless 1.2.840.10008.1.2.4.57 and Lossless SV1
//     1.2.840.10008.1.2.4.70 (PS3.5 8.2.1, ITU-T T.81): one pure-Go decoder
//     for Huffman-coded sequential DCT at 8 and 12 bits and lossless
//     process 14 (predictors 1–7, point transform, restart intervals, 2–16
//     bits), 1 or 3 components, chroma subsampling. Its inverse DCT,
//     upsampling and YCbCr→RGB conversion are IJG's integer arithmetic, so
//     it reproduces dcmtk's dcmdjpeg exactly. YCbCr DCT images come out as
//     RGB (Frame.PhotometricInterpretation "RGB"). Whether a stream is
//     YCbCr is decided as IJG does: the Adobe APP14 transform flag, else a
//     JFIF marker, else component identifiers 'R','G','B' (no) or 1,2,3
//     (yes), else the declared Photometric Interpretation (pydicom's
//     SC_jpeg_no_color_transform*.dcm stay RGB). Progressive, hierarchical
//     and arithmetic-coded JPEG return ErrUnsupported.
//   - JPEG-LS Lossless 1.2.840.10008.1.2.4.80 and Near-Lossless
//     1.2.840.10008.1.2.4.81 (PS3.5 8.2.3, ITU-T T.87): CharLS 2.4 through
//     cgo (libcharls).
//   - JPEG 2000 Lossless 1.2.840.10008.1.2.4.90 and JPEG 2000
//     1.2.840.10008.1.2.4.91 (PS3.5 8.2.4), and HTJ2K 1.2.840.10008.1.2.4.201,
//     .202 and .203 (PS3.5 8.2.7): OpenJPEG 2.5 through cgo (libopenjp2),
//     from memory, J2K codestreams and JP2 files alike. The codestream's
//     signedness wins over Pixel Representation (reported in
//     Frame.PixelRepresentation); RCT/ICT images come out as RGB.
//
// All cgo is in this package; every C object is released before Decode
// returns and every library status or message becomes the returned error
// (nothing is printed). Build needs the Debian packages libcharls-dev and
// libopenjp2-7-dev (and pkg-config); a binary needs libcharls2 and
// libopenjp2-7 at run time.
//
// Hostile input: decoders check every declared size against Params and the
// stream length before allocating, refuse frames above maxFrameSamples,
// and never panic.
package codec
