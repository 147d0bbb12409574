// Package models is radgate's model repository: the reference models'
// manifests, ONNX files, model cards and training scripts (train/), and
// the loader that reads a repository.
//
// Layout (the shape of Triton's model repository): REPO/NAME/VERSION/
// holds manifest.yaml, the ONNX file and the model card. Several versions
// of a model sit side by side.
//
// Entry points:
//
//   - [Manifest], [ReadManifest], [Manifest.Validate]: what a model is,
//     takes and answers; unknown keys and inconsistent shapes are errors.
//   - [Scan]: every model version in a repository, with the errors of the
//     ones that cannot be used.
//   - [Model.Verify]: the ONNX file's SHA-256 against the manifest.
//
// The reference models are trained on synthetic phantoms (package
// phantom) and are not for clinical use; their cards say so. Serving code
// lives in package inference, not here.
package models
