#!/usr/bin/python3
"""Dump DICOM files with pydicom, the reader independent of radgate's.

Usage: dump.py FILE...  Prints one JSON object: for each FILE, a list of
{"path", "tag", "vr", "value"} for every element of the file meta and the
data set, sequence items included (path: tags and item indexes joined by
"/"). Values are strings: text as is, numbers with str(), bytes decoded as
Latin-1, multiple values joined with a backslash; a sequence's value is its
number of items.
"""
import json
import sys

import pydicom


def render(elem):
    v = elem.value
    if elem.VR == "SQ":
        return str(len(v))
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    if isinstance(v, (list, pydicom.multival.MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v)


def walk(ds, prefix, out):
    for elem in ds:
        tag = "%04X%04X" % (elem.tag.group, elem.tag.element)
        path = prefix + tag
        out.append({"path": path, "tag": tag, "vr": elem.VR, "value": render(elem)})
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                walk(item, "%s/%d/" % (path, i), out)


result = {}
for name in sys.argv[1:]:
    ds = pydicom.dcmread(name)
    out = []
    walk(ds.file_meta, "", out)
    walk(ds, "", out)
    result[name] = out
json.dump(result, sys.stdout)
