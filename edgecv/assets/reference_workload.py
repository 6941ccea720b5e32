"""The reference workload of the latency gate: a fixed convolutional network, stored as
``reference-workload.onnx`` beside this file and run by the same backend, with the same
threads, as the model being gated, so that the machine's state slows both alike.

Its activations (up to 5.5 MB a tensor at 416) are sized to live in the last-level cache,
as a detector's do, and not in the per-core caches: on the shared 2-core machine the gate was
built on, a YOLOv8n at 640 ran 20-40% slower for seconds at a time while a network of
192-pixel activations beside it did not move at all (the neighbours' share of the shared L3,
by every sign); this network slowed with it, and its ratio to the model moved 1.08x from
the 10th to the 90th percentile over three minutes where the small one's moved 1.23x.

Regenerate it (it is deterministic; a test checks the stored file against this script)::

    python -m edgecv.assets.reference_workload
"""

from __future__ import annotations

from pathlib import Path

PATH = Path(__file__).with_name("reference-workload.onnx")
INPUT = "images"
#: input [1, 3, SIZE, SIZE] float32
SIZE = 416
#: (output channels, kernel, stride) of each convolution, each followed by a ReLU
LAYERS = ((16, 3, 2), (32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 2), (128, 3, 1))


def build() -> bytes:
    """The network's ONNX bytes: seeded weights, opset 17, no metadata that changes between runs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, cin = [], [], INPUT, 3
    for i, (cout, k, s) in enumerate(LAYERS):
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        b = np.zeros(cout, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(
            helper.make_node(
                "Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev, cin = f"r{i}", cout
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["out"]))
    graph = helper.make_graph(
        nodes,
        "edgecv-reference-workload",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, cin, 1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgecv")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


if __name__ == "__main__":
    PATH.write_bytes(build())
    print(f"written: {PATH} ({PATH.stat().st_size} bytes)")
