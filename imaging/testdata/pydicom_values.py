#!/usr/bin/python3
"""Reference modality values for imaging's tests, computed by pydicom.

usage: pydicom_values.py OUTDIR FILE...

For each FILE whose pixel data pydicom decodes without an optional plugin,
writes OUTDIR/<basename>.f32: frames×rows×cols float32 little endian, the
monochrome values after apply_modality_lut (PS3.3 C.11.1), or for colour
the luminance 0.299 R + 0.587 G + 0.114 B (the Y sample for YBR_*).
Prints one JSON object per FILE: {"file", "ok", "shape" | "error"}.
"""
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut


def values(ds):
    arr = ds.pixel_array
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if int(ds.SamplesPerPixel) == 1:
        v = apply_modality_lut(arr, ds).astype(np.float64)
    else:
        arr = arr.astype(np.float64)
        if ds.PhotometricInterpretation == "RGB":
            v = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
        else:
            v = arr[..., 0]
    return v.reshape(frames, rows, cols).astype("<f4")


def main():
    out = sys.argv[1]
    for path in sys.argv[2:]:
        rec = {"file": path}
        try:
            ds = pydicom.dcmread(path)
            v = values(ds)
            v.tofile(os.path.join(out, os.path.basename(path) + ".f32"))
            rec.update(ok=True, shape=list(v.shape))
        except Exception as e:  # every failure is reported, none is fatal
            rec.update(ok=False, error="%s: %s" % (type(e).__name__, e))
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
