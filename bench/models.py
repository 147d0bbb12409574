#!/usr/bin/python3
"""Writes the realistic-size benchmark models into a model repository.

    /usr/bin/python3 bench/models.py OUT_REPO

- densenet121-cxr: torchvision DenseNet-121, 1x224x224 input, 14 outputs
  (the CheXpert/NIH label count), sigmoid.
- resnet18-ct: torchvision ResNet-18, 3x256x256 input (three CT windows),
  1 output, sigmoid.

Weights are random (seeded): these models measure speed only and answer
nothing meaningful. ONNX opset 17, dynamic batch axis, each with a radgate
manifest so the gateway loads them like any model. Needs Debian's
python3-torch, python3-torchvision and python3-onnx. Not committed:
`make bench` writes them into its cache.
"""
import hashlib
import os
import sys

import onnx
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "train"))
from train import WithSigmoid  # noqa: E402  (the same export wrapper as the reference models)

MANIFEST = """name: {name}
version: 1.0.0
task: benchmark
description: Benchmark model with random weights; measures speed only. NOT FOR CLINICAL USE.
manufacturer: radgate bench
card: MODEL_CARD.md
file: model.onnx
sha256: "{sha}"
hints: {{modalities: [{modality}]}}
input: {{name: input, shape: [-1, {c}, {s}, {s}], layout: NCHW}}
preprocess:
  size: [{s}, {s}]
  resize: letterbox
  channels: [{channels}]
output: {{name: output, activation: none}}
aggregate: {aggregate}
labels:
{labels}
batching: {{max_batch: 8, max_queue_delay: 2ms}}
"""


def densenet():
    net = torchvision.models.densenet121(weights=None, num_classes=14)
    net.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


def resnet():
    return torchvision.models.resnet18(weights=None, num_classes=1)


def write(repo, name, net, c, s, modality, channels, aggregate, nlabels):
    out = os.path.join(repo, name, "1.0.0")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.onnx")
    model = WithSigmoid(net).eval()
    torch.onnx.export(model, torch.zeros(1, c, s, s), path, opset_version=17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    onnx.checker.check_model(onnx.load(path))
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    labels = "\n".join(
        '  - {name: finding%d, concept: {scheme: DCM, code: "%d", meaning: Finding %d}, threshold: 0.5, priority: ROUTINE}' % (i, 1000 + i, i)
        for i in range(nlabels))
    with open(os.path.join(out, "manifest.yaml"), "w") as f:
        f.write(MANIFEST.format(name=name, sha=sha, modality=modality, c=c, s=s, channels=channels,
                                aggregate=aggregate, labels=labels))
    with open(os.path.join(out, "MODEL_CARD.md"), "w") as f:
        f.write("# %s\n\nBenchmark model, random weights: speed only. Not for clinical use.\n" % name)
    print("wrote", out, file=sys.stderr)


def main():
    repo = sys.argv[1]
    torch.manual_seed(0)
    write(repo, "densenet121-cxr", densenet(), 1, 224, "DX", "{}", "none", 14)
    write(repo, "resnet18-ct", resnet(), 3, 256, "CT",
          "{window: {center: 40, width: 80}}, {window: {center: 80, width: 200}}, {window: {center: 600, width: 2800}}",
          "max", 1)


if __name__ == "__main__":
    main()
