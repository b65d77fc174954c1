"""Which operators of the exported graphs ONNX Runtime's CPU provider runs in bfloat16.

A bfloat16 ONNX Runtime backend would need bfloat16 kernels for every operator of the graphs (convolutions,
matrix products, element-wise arithmetic, activations, softmax). This script builds a one-node graph per operator
with bfloat16 inputs and output and reports whether a CPU session can be created for it.

    python benchmarks/onnx_bfloat16_kernels.py
"""

from __future__ import annotations

import onnxruntime
from onnx import TensorProto, helper

# operator -> input shapes; the operators the exported recognizer and detector are made of
OPERATORS = {
    "Conv": [[1, 3, 8, 8], [4, 3, 3, 3]],
    "MatMul": [[2, 4], [4, 3]],
    "Add": [[2, 4], [2, 4]],
    "Mul": [[2, 4], [2, 4]],
    "Relu": [[2, 4]],
    "Sigmoid": [[2, 4]],
    "Softmax": [[2, 4]],
    "LayerNormalization": [[2, 4], [4], [4]],
}


def bfloat16_support(operator: str, shapes: list[list[int]], opset: int) -> str:
    names = [f"input{index}" for index in range(len(shapes))]
    graph = helper.make_graph(
        [helper.make_node(operator, names, ["output"])],
        operator,
        [
            helper.make_tensor_value_info(name, TensorProto.BFLOAT16, shape)
            for name, shape in zip(names, shapes, strict=True)
        ],
        [helper.make_tensor_value_info("output", TensorProto.BFLOAT16, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime reports a missing kernel as a generic exception
        return f"no: {str(error).splitlines()[0]}"
    return "yes"


def main() -> None:
    print(f"onnxruntime {onnxruntime.__version__}, CPUExecutionProvider")
    for opset in (20, 22):
        for operator, shapes in OPERATORS.items():
            print(f"opset {opset} {operator}: {bfloat16_support(operator, shapes, opset)}")


if __name__ == "__main__":
    main()
