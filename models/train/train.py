#!/usr/bin/python3
"""Train, evaluate and export one of radgate's reference models.

    /usr/bin/python3 models/train/train.py cxr-triage   # or ct-ich

Needs Debian's python3-torch and python3-onnx (for /usr/bin/python3) and a
built bin/radgate (`make build`). The data are synthetic phantoms
(`radgate phantom`), turned into tensors by `radgate tensors` -- the same
preprocessing code the gateway serves with, read from the same manifest --
so training and serving cannot drift. Writes models/NAME/VERSION/: the
ONNX file (opset 17, dynamic batch axis, sigmoid probabilities), the
manifest with the file's sha256, and a model card with the validation
figures.

These models are trained on synthetic phantoms -- NOT FOR CLINICAL USE.
Their figures describe phantoms, not patients.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Training seeds start at 1; validation seeds at 100001. The acceptance
# evaluation in Go (models_test.go) uses seeds from 900001, never seen here.
TASKS = {
    "cxr-triage": dict(kind="cxr", train=(1, 600), val=(100001, 100090), epochs=20),
    "ct-ich": dict(kind="ct-head", train=(1, 80), val=(100001, 100040), epochs=12, slices=16),
}


def tensors(radgate, template, kind, seeds, out, slices=None):
    cmd = [radgate, "tensors", "--manifest", template, "--phantoms", kind,
           "--seeds", "%d-%d" % seeds, "--out", out]
    if slices:
        cmd += ["--slices", str(slices)]
    subprocess.run(cmd, check=True)
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    n = meta["count"]
    x = np.fromfile(os.path.join(out, "x.f32"), dtype="<f4").reshape([n] + meta["item_shape"])
    y = np.fromfile(os.path.join(out, "y.f32"), dtype="<f4").reshape(n, len(meta["labels"]))
    with open(os.path.join(out, "items.jsonl")) as f:
        seeds = np.array([json.loads(line).get("seed", 0) for line in f])
    return x, y, meta["labels"], seeds


def per_study(p, y, seeds):
    """A series model answers per study: its score is the highest slice's
    (manifest aggregate: max), and a study is positive if any slice is."""
    keys = sorted(set(seeds.tolist()))
    return (np.array([p[seeds == k].max(0) for k in keys]), np.array([y[seeds == k].max(0) for k in keys]))


def network(channels, labels):
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(
        *block(channels, 16), *block(16, 32), *block(32, 48), *block(48, 64), *block(64, 64),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, labels))


class WithSigmoid(nn.Module):
    """The exported graph answers probabilities (manifest activation: none)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.sigmoid(self.net(x))


def sens_spec(p, y, threshold=0.5):
    pos, neg = y >= 0.5, y < 0.5
    tp = int(((p >= threshold) & pos).sum())
    tn = int(((p < threshold) & neg).sum())
    return tp, int(pos.sum()), tn, int(neg.sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task", choices=sorted(TASKS))
    ap.add_argument("--radgate", default=os.path.join(ROOT, "bin", "radgate"))
    ap.add_argument("--epochs", type=int)
    args = ap.parse_args()
    task = TASKS[args.task]
    template = os.path.join(HERE, args.task + ".yaml")
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(os.cpu_count() or 1)

    with tempfile.TemporaryDirectory() as tmp:
        xt, yt, labels, _ = tensors(args.radgate, template, task["kind"], task["train"],
                                 os.path.join(tmp, "train"), task.get("slices"))
        xv, yv, _, vseeds = tensors(args.radgate, template, task["kind"], task["val"],
                            os.path.join(tmp, "val"), task.get("slices"))
    print("train %s, val %s, positives per label %s" % (xt.shape, xv.shape, yt.sum(0)), flush=True)

    net = network(xt.shape[1], len(labels))
    # Positives are rarer than negatives (a hemorrhage spans a few slices):
    # weight them so the loss does not favour answering "negative".
    pos = yt.sum(0)
    pos_weight = torch.tensor((len(yt) - pos) / np.maximum(pos, 1), dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    epochs = args.epochs or task["epochs"]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(xt) + 31) // 32))
    X, Y = torch.from_numpy(xt), torch.from_numpy(yt)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(X))
        total, t0 = 0.0, time.time()
        for i in range(0, len(X), 32):
            idx = perm[i:i + 32]
            xb = X[idx]
            if np.random.rand() < 0.5:  # a chest can be imaged mirrored; so can a head
                xb = torch.flip(xb, dims=[3])
            opt.zero_grad()
            loss = loss_fn(net(xb), Y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        net.eval()
        with torch.no_grad():
            pv = torch.sigmoid(net(torch.from_numpy(xv))).numpy()
        accs = ["%s %d/%d sens %d/%d spec" % ((l,) + sens_spec(pv[:, k], yv[:, k])) for k, l in enumerate(labels)]
        print("epoch %d loss %.4f (%.0fs)  val: %s" % (epoch + 1, total / len(X), time.time() - t0, "; ".join(accs)), flush=True)

    with open(template) as f:
        spec = yaml.safe_load(f)
    name, version = spec["name"], spec["version"]
    out = os.path.join(ROOT, "models", name, version)
    os.makedirs(out, exist_ok=True)
    model_path = os.path.join(out, spec["file"])
    input_name, output_name = spec["input"]["name"], spec["output"]["name"]
    exported = WithSigmoid(net).eval()
    torch.onnx.export(exported, torch.from_numpy(xv[:1]), model_path, opset_version=17,
                      input_names=[input_name], output_names=[output_name],
                      dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}})
    onnx.checker.check_model(onnx.load(model_path))
    with open(model_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(template) as f:
        text = f.read()
    text = re.sub(r'^sha256: .*$', 'sha256: "%s"' % digest, text, count=1, flags=re.M)
    text = re.sub(r'^# Training template.*?\n(?=name:)', "# Written by models/train/train.py from models/train/%s.yaml; edit that, not this.\n" % args.task,
                  text, count=1, flags=re.S)
    with torch.no_grad():
        pv = exported(torch.from_numpy(xv)).numpy()
    if spec["aggregate"] == "max":
        pv, yv = per_study(pv, yv, vseeds)
    # Each label's threshold is calibrated on the validation phantoms (the
    # one maximising sensitivity + specificity); the held-out evaluation
    # in Go uses other seeds again.
    thresholds = [calibrate(pv[:, k], yv[:, k]) for k in range(len(labels))]
    it = iter(thresholds)
    text = re.sub(r"threshold: [0-9.]+", lambda m: "threshold: %.3f" % next(it), text)
    with open(os.path.join(out, "manifest.yaml"), "w") as f:
        f.write(text)
    write_card(os.path.join(out, spec["card"]), args.task, task, name, version, labels, pv, yv,
               sum(p.numel() for p in net.parameters()), os.path.getsize(model_path), epochs, thresholds)
    print("wrote %s (sha256 %s)" % (out, digest))


def calibrate(p, y):
    """The threshold in 0.05..0.95 with the highest sensitivity + specificity
    on (p, y); ties go to the one nearest 0.5."""
    best = None
    for t in np.arange(0.05, 0.951, 0.01):
        tp, npos, tn, nneg = sens_spec(p, y, t)
        score = (tp / max(npos, 1) + tn / max(nneg, 1), -abs(t - 0.5))
        if best is None or score > best[0]:
            best = (score, float(t))
    return round(best[1], 3)


def write_card(path, taskname, task, name, version, labels, pv, yv, params, size, epochs, thresholds):
    rows = []
    for k, l in enumerate(labels):
        tp, npos, tn, nneg = sens_spec(pv[:, k], yv[:, k], thresholds[k])
        rows.append("| %s | %.2f | %d/%d (%.2f) | %d/%d (%.2f) |" % (l, thresholds[k], tp, npos, tp / max(npos, 1), tn, nneg, tn / max(nneg, 1)))
    unit = "series" if task["kind"] == "ct-head" else "radiographs"
    unit_note = "score = its most suspicious slice" if task["kind"] == "ct-head" else "one image"
    with open(path, "w") as f:
        f.write("""# Model card: %(name)s %(version)s

**Trained on synthetic phantoms — not for clinical use.** This model has never
seen a patient image. Its figures describe radgate's phantoms, not medical
accuracy; it exists to exercise the gateway end to end.

- Task: %(task)s. Input and preprocessing: see manifest.yaml (the same
  preprocessing produced the training tensors: `radgate tensors`).
- Architecture: 5 conv blocks (3×3 conv, batch norm, ReLU, max pool),
  global max pool, linear, sigmoid; %(params)d parameters; ONNX opset 17,
  dynamic batch axis; %(size)d bytes.
- Training data: `radgate phantom --kind %(kind)s`, seeds %(t0)d–%(t1)d,
  findings cycled over the seeds (none and each finding); %(epochs)d epochs,
  Adam, one-cycle learning rate, horizontal flips. Script:
  models/train/train.py (Debian python3-torch).
- Validation: phantom seeds %(v0)d–%(v1)d (never used in training), per
  %(unit_one)s (%(unit_note)s), at each label's threshold, which was calibrated on this
  set (highest sensitivity + specificity):

| label | threshold | sensitivity | specificity |
|---|---|---|---|
%(rows)s

- Held-out evaluation per study (seeds from 900001): `go test ./models -run
  TestReferenceModels -v` prints sensitivity and specificity.
- Limitations: phantoms are simple geometric anatomy with noise; real
  radiographs and CTs differ in every way that matters clinically.
""" % dict(name=name, version=version, task=taskname, params=params, size=size, kind=task["kind"],
           t0=task["train"][0], t1=task["train"][1], v0=task["val"][0], v1=task["val"][1], epochs=epochs,
           unit_one=unit.rstrip("s") if unit == "radiographs" else unit, unit_note=unit_note, rows="\n".join(rows)))


if __name__ == "__main__":
    sys.exit(main())
