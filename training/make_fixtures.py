"""Golden fixtures for the TypeScript tests (run by export.py; can be run alone).

tests/fixtures/model/preproc-<SOPInstanceUID>.f32   float32 little-endian, ONE channel [224*224] row-major:
    the Python preprocessing (training/preprocess.py) of a real COVID-CT-MD DICOM slice, after normalisation
    (the model input repeats this plane to 3 channels).
tests/fixtures/model/preproc-<SOPInstanceUID>.json  {source, sopInstanceUid, kind, shape, dtype, cropBox, cropUsed, preprocessing}
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from preprocess import PREPROCESSING, load_hu, normalize, pixel_spacing, preprocess_unit_box  # noqa: E402

REPO = os.path.dirname(HERE)
DATA = os.path.join(REPO, "..", "shared", "data")
FIX = os.path.join(REPO, "tests", "fixtures", "model")
# A P001 slice with infection (InstanceNumber 124, label 1). Relative to ../shared/data.
PREPROC_SOURCE = "covid-ct-md/P001/98C14734-ASSH_29.dcm"


def preproc_fixture() -> dict:
    os.makedirs(FIX, exist_ok=True)
    hu, ds = load_hu(os.path.join(DATA, PREPROC_SOURCE))
    u, (y0, y1, x0, x1), used = preprocess_unit_box(hu, "hu", PREPROCESSING, pixel_spacing(ds))
    x = normalize(u)
    assert np.array_equal(x[0], x[1]) and np.array_equal(x[0], x[2])
    uid = str(ds.SOPInstanceUID)
    base = os.path.join(FIX, f"preproc-{uid}")
    x[0].astype("<f4").tofile(base + ".f32")
    meta = {
        "source": PREPROC_SOURCE,
        "sourceRoot": "../shared/data",
        "sopInstanceUid": uid,
        "kind": "hu",
        "file": os.path.basename(base) + ".f32",
        "dtype": "float32-le",
        "shape": [224, 224],
        "note": "one channel of the normalised model input; the model input repeats it to 3 channels",
        "cropBox": {"y0": y0, "y1": y1, "x0": x0, "x1": x1},
        "cropUsed": used,
        "preprocessing": PREPROCESSING,
    }
    with open(base + ".json", "w") as f:
        json.dump(meta, f, indent=2)
    return {"file": base + ".f32", "tensor": x, "meta": meta}


if __name__ == "__main__":
    r = preproc_fixture()
    print(r["file"], r["meta"]["cropBox"])
