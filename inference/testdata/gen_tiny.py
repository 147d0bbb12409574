"""Writes tiny.onnx: the smallest real model the ort tests run.

Y = Sigmoid(Flatten(X) @ W + B), X float32 [N,1,4,4] (N dynamic), W[16,3],
B[3] with W[i][j] = (i - 8 + j) / 16 and B[j] = j / 4 - 0.25, so the Go test
computes the expected outputs itself. Opset 17. Run with Debian's
python3-onnx: /usr/bin/python3 gen_tiny.py
"""
import onnx
from onnx import TensorProto, helper

W = [(i - 8 + j) / 16 for i in range(16) for j in range(3)]
B = [j / 4 - 0.25 for j in range(3)]
graph = helper.make_graph(
    [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["y"]),
    ],
    "tiny",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    [
        helper.make_tensor("w", TensorProto.FLOAT, [16, 3], W),
        helper.make_tensor("b", TensorProto.FLOAT, [3], B),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="radgate-test")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "tiny.onnx")
