"""TensorRT's ONNX operator support, per TensorRT version: the opset range, the supported
operators with their types and restrictions, the operators marked unsupported, the rules
each version's parser applies beyond its table, and the operators it builds from plugins.

Two kinds of tables (:data:`AUTHORITY`, ``edgecv doctor --versions``):

- **authoritative**: "10.3" (JetPack 6) and "10.15" are copied verbatim from the parser's own
  operator matrix (onnx-tensorrt ``docs/operators.md``, :data:`SOURCES`), with the parser rules
  of :data:`PARSER_RULES` read from its importer code;
- **derived**: no operator matrix is published for 11.x. "11.0", "11.2" and "11.5" are the
  10.15 table with the changes the 11.x release notes list (:data:`DERIVED`): Swish from
  11.0, DFT and 5-D GridSample from 11.2, opset 25 from 11.5. Each label covers the releases
  up to the next one (``COVERS``).

Refresh from onnx-tensorrt when a new matrix is published. docs/operators.md says where each
rule comes from.
"""

SOURCES = {
    "10.3": "jonhoo/onnx-tensorrt:docs/operators.md@3587df8fe753c70e7d0c90c8efe506c4c0ace8a1 (fork of onnx/onnx-tensorrt "
    "on the 10.3-GA line: onnx_tensorrt/__init__.py __version__='10.3.0' at this commit; docs/Changelog.md top "
    "entry 'TensorRT 10.3 GA Release - 2024-8-7' at 62bdde2a04fcd53c2409cb895ee18db445b7e755, the commit "
    "onnxruntime PR #21742 pins as onnx-tensorrt 10.3-GA). NOTE: header line was not bumped and still reads "
    "'TensorRT 10.0 supports ...'. The upstream onnx/onnx-tensorrt index holds no 10.3 snapshot of this file.",
    "10.15": "onnx/onnx-tensorrt:docs/operators.md@fa5aa9f61e7781d2ca8f5351d42c1f19525a6124 (header 'TensorRT 10.15 "
    "supports ...'; latest version stored; no 11.x operators.md is stored although TRT 11.x releases exist).",
}

OPSETS = {"10.3": (9, 20), "10.15": (9, 24)}

HEADER = {
    "10.3": "TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset 20. (sic, unchanged header in "
    "the 10.3-GA file)",
    "10.15": "TensorRT 10.15 supports operators in the inclusive range of opset 9 to opset 24.",
}

NOTES = {
    "10.3": [
        "TensorRT supports the following ONNX data types: DOUBLE, FLOAT32, FLOAT16, BFLOAT16, INT32, INT64, FP8, "
        "INT8, INT4, UINT8, and BOOL",
        "Note: There is limited support for DOUBLE type. TensorRT will attempt to cast DOUBLE down to FLOAT, "
        "clamping values to `+-FLT_MAX` if necessary.",
        "Note: INT8, INT4, and FP8 are treated as `Quantized Types` in TensorRT, where support is available only "
        "through quantization from a floating-point type with higher precision. See [section "
        "7.4.2](https://docs.nvidia.com/deeplearning/tensorrt/developer-guide/index.html#qat-models-work) of the "
        "developer guide for more information.",
        "Note: UINT8 is only supported as network input or output tensor types.",
        "(No note about INT64 down-casting, dynamic shapes or plugin fallback at the top of the file; INT64 is a "
        "native type. Q/DQ zero-point rule is per-op: DequantizeLinear `x_zero_point` must be zero; QuantizeLinear "
        "`y_zero_point` must be 0.)",
    ],
    "10.15": [
        "TensorRT supports the following ONNX data types: DOUBLE, FLOAT32, FLOAT16, BFLOAT16, FP8, FP4, INT32, "
        "INT64, INT8, INT4, UINT8, and BOOL",
        "Note: There is limited support for DOUBLE type. TensorRT will attempt to cast DOUBLE down to FLOAT, "
        "clamping values to `+-FLT_MAX` if necessary.",
        "Note: INT8, INT4, FP8 and FP4 are treated as `Quantized Types` in TensorRT, where support is available "
        "only through quantization from a floating-point type with higher precision. See [our quantization "
        "guide](https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/work-quantized-types.html) "
        "for more information.",
        "Note: UINT8 is only supported as network input or output tensor types.",
        "(No note about INT64 down-casting, dynamic shapes or plugin fallback at the top of the file. Q/DQ "
        "zero-point rule is per-op, same as 10.3.)",
    ],
}

SUPPORTED = {
    "10.3": {
        "Abs": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Acos": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Acosh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Add": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "And": {"types": "BOOL", "restrictions": ""},
        "ArgMax": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "ArgMin": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Asin": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Asinh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Atan": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Atanh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "AveragePool": {
            "types": "FP32, FP16, BF16",
            "restrictions": "2D or 3D Pooling only. `dilations` must be empty or all ones",
        },
        "BatchNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Cast": {"types": "FP32, FP16, BF16, INT32, INT64, UINT8, BOOL", "restrictions": ""},
        "CastLike": {"types": "FP32, FP16, BF16, INT32, INT64, UINT8, BOOL", "restrictions": ""},
        "Ceil": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Celu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Clip": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Concat": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Constant": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`sparse_value`, `value_string`, and `value_strings` attributes are unsupported.",
        },
        "ConstantOfShape": {"types": "FP32, FP16, BF16, INT32, INF64, BOOL", "restrictions": ""},
        "Conv": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "ConvTranspose": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Cos": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Cosh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "CumSum": {"types": "FP32, FP16, BF16", "restrictions": "`axis` must be an initializer"},
        "DeformConv": {
            "types": "FP32, FP16",
            "restrictions": "`input` must have 1D or 2D spatial dimensions. `pads` for the beginning and "
            "end along each spatial axis must be the same",
        },
        "DepthToSpace": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "DequantizeLinear": {"types": "INT8, FP8, INT4", "restrictions": "`x_zero_point` must be zero"},
        "Div": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Dropout": {
            "types": "FP32, FP16, BF16",
            "restrictions": "`is_traning` must be an initializer and evaluate to False.",
        },
        "Einsum": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Elu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Equal": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Erf": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Exp": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Expand": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "EyeLike": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`input` must have static dimensions",
        },
        "Flatten": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Floor": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Gather": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "GatherElements": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "GatherND": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Gelu": {"types": "FP32, FP16, BF16, INT8, INT32, INT64", "restrictions": ""},
        "Gemm": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GlobalAveragePool": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GlobalLpPool": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GlobalMaxPool": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Greater": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "GreaterOrEqual": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "GridSample": {"types": "FP32, FP16", "restrictions": "Input must be 4D input."},
        "GroupNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GRU": {
            "types": "FP32, FP16, BF16",
            "restrictions": "For bidirectional GRUs, activation functions must be the same for both the forward "
            "and reverse pass",
        },
        "HardSigmoid": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "HardSwish": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Hardmax": {
            "types": "FP32, FP16, BF16",
            "restrictions": "`axis` dimension of input must be a build-time constant",
        },
        "Identity": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "If": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "Output tensors of the two conditional branches must have the same rank and must have "
            "different names",
        },
        "ImageScaler": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "InstanceNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "IsInf": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "IsNaN": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "LayerNormalization": {"types": "FP32, FP16, BF16", "restrictions": "Only the first output `Y` is supported."},
        "LeakyRelu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Less": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "LessOrEqual": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Log": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "LogSoftmax": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Loop": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "Scan output length cannot be dynamic. The shape of Loop carried dependencies must "
            "be the same across all loop iterations.",
        },
        "LRN": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "LSTM": {
            "types": "FP32, FP16, BF16",
            "restrictions": "For bidirectional LSTMs, activation functions must be the same for both the "
            "forward and reverse pass. `input_forget` attribute must be 0. `layout` attribute "
            "must be 0.",
        },
        "LpNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "LpPool": {"types": "FP32, FP16, BF16", "restrictions": "`dilations` must be empty or all ones"},
        "MatMul": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Max": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "MaxPool": {
            "types": "FP32, FP16, BF16",
            "restrictions": "2D or 3D pooling only. `Indices` output tensor unsupported. `dilations` must be "
            "empty or all ones",
        },
        "Mean": {"types": "FP32, FP16, BF16, FP8, INT32, INT64", "restrictions": ""},
        "MeanVarianceNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Min": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Mish": {"types": "FP32, FP16", "restrictions": ""},
        "Mod": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Mul": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Neg": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "NonMaxSuppression": {"types": "FP32, FP16", "restrictions": ""},
        "NonZero": {"types": "FP32, FP16", "restrictions": ""},
        "Not": {"types": "BOOL", "restrictions": ""},
        "OneHot": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`depth` must be a build-time constant",
        },
        "Or": {"types": "BOOL", "restrictions": ""},
        "Pad": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ParametricSoftplus": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Pow": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "PRelu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "QuantizeLinear": {"types": "FP32, FP16, BF16", "restrictions": "`y_zero_point` must be 0"},
        "RandomNormal": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "RandomNormalLike": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "RandomUniform": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "RandomUniformLike": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "Range": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Reciprocal": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "ReduceL1": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceL2": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceLogSum": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceLogSumExp": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceMax": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceMean": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceMin": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceProd": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceSum": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceSumSquare": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "Relu": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Reshape": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Resize": {
            "types": "FP32, FP16, BF16",
            "restrictions": "Supported resize transformation modes: `half_pixel`, `pytorch_half_pixel`, "
            "`tf_half_pixel_for_nn`, `asymmetric`, and `align_corners`.<br />Supported resize "
            "modes: `nearest`, `linear`.<br />Supported nearest modes: `floor`, `ceil`, "
            "`round_prefer_floor`, `round_prefer_ceil`.<br />Supported aspect ratio policy: "
            "`stretch`.<br />When `scales` is a tensor input, `axes` must be an iota vector "
            "of length rank(input).<br />Antialiasing is not supported.",
        },
        "ReverseSequence": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "RNN": {
            "types": "FP32, FP16, BF16",
            "restrictions": "For bidirectional RNNs, activation functions must be the same for both the forward "
            "and reverse pass",
        },
        "RoiAlign": {"types": "FP32, FP16", "restrictions": ""},
        "Round": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "ScaledTanh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Scan": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Scatter": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "ScatterElements": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "ScatterND": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`reduction` is not supported"},
        "Selu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Shape": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Shrink": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Sigmoid": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Sign": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Sin": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Sinh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Size": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Slice": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Softmax": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Softplus": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Softsign": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "SpaceToDepth": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Split": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Sqrt": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Squeeze": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": "`axes` must be an initializer"},
        "Sub": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Sum": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Tan": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Tanh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "ThresholdedRelu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Tile": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "TopK": {
            "types": "FP32, FP16, BF16, INT32, INT64",
            "restrictions": "`sorted` must be 1. `K` input must be less than 3840.",
        },
        "Transpose": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Trilu": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Unsqueeze": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`axes` must be a constant tensor",
        },
        "Upsample": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Where": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Xor": {"types": "BOOL", "restrictions": ""},
    },
    "10.15": {
        "Abs": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Acos": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Acosh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Add": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "And": {"types": "BOOL", "restrictions": ""},
        "ArgMax": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "ArgMin": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Asin": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Asinh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Atan": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Atanh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Attention": {
            "types": "FP32, FP16, BF16, INT8, FP8",
            "restrictions": "`Q`, `K`, `V` and `attn_mask ` must be 4D. `past_key`, `past_value` and "
            "`nonpad_kv_seqlen` inputs are unsupported. `present_key`, `present_value` "
            "and `qk_matmul_output` outputs are unsupported. `qk_matmul_output_mode` and "
            "`softcap` attributes are unsupported. `q_num_heads` and `kv_num_heads` "
            "attributes are supported via being specified as the second dimension of `Q` "
            "and `K`/`V`'s shapes respectively.",
        },
        "AveragePool": {
            "types": "FP32, FP16, BF16",
            "restrictions": "2D or 3D Pooling only. `dilations` must be empty or all ones",
        },
        "BatchNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "BlackmanWindow": {"types": "FP32, FP16", "restrictions": ""},
        "Cast": {"types": "FP32, FP16, BF16, INT32, INT64, UINT8, BOOL", "restrictions": ""},
        "CastLike": {"types": "FP32, FP16, BF16, INT32, INT64, UINT8, BOOL", "restrictions": ""},
        "Ceil": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Celu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Clip": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Concat": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Constant": {
            "types": "FP32, FP16, BF16, FP8, FP4, INT4, INT32, INT64, BOOL",
            "restrictions": "`sparse_value`, `value_string`, and `value_strings` attributes are unsupported.",
        },
        "ConstantOfShape": {"types": "FP32, FP16, BF16, FP8, FP4, INT4, INT32, INT64, BOOL", "restrictions": ""},
        "Conv": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "ConvTranspose": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Cos": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Cosh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "CumSum": {"types": "FP32, FP16, BF16", "restrictions": "`axis` must be a build-time constant"},
        "DeformConv": {
            "types": "FP32, FP16",
            "restrictions": "`input` must have 1D or 2D spatial dimensions. `pads` for the beginning and "
            "end along each spatial axis must be the same",
        },
        "DepthToSpace": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "DequantizeLinear": {"types": "INT8, FP8, FP4, INT4", "restrictions": "`x_zero_point` must be zero"},
        "Div": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Dropout": {
            "types": "FP32, FP16, BF16",
            "restrictions": "`is_training` must be an initializer and evaluate to False.",
        },
        "Einsum": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Elu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Equal": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Erf": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Exp": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Expand": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "EyeLike": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`input` must have static dimensions",
        },
        "Flatten": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Floor": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Gather": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "GatherElements": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "GatherND": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Gelu": {"types": "FP32, FP16, BF16, INT8, INT32, INT64", "restrictions": ""},
        "Gemm": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GlobalAveragePool": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GlobalLpPool": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GlobalMaxPool": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Greater": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "GreaterOrEqual": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "GridSample": {"types": "FP32, FP16", "restrictions": "Input must be 4D input."},
        "GroupNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "GRU": {
            "types": "FP32, FP16, BF16",
            "restrictions": "For bidirectional GRUs, activation functions must be the same for both the forward "
            "and reverse pass",
        },
        "HammingWindow": {"types": "FP32, FP16", "restrictions": ""},
        "HannWindow": {"types": "FP32, FP16", "restrictions": ""},
        "HardSigmoid": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "HardSwish": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Hardmax": {
            "types": "FP32, FP16, BF16",
            "restrictions": "`axis` dimension of input must be a build-time constant",
        },
        "Identity": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "If": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "Output tensors of the two conditional branches must have the same rank and must "
            "have different names",
        },
        "ImageScaler": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "InstanceNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "IsInf": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "IsNaN": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "LayerNormalization": {"types": "FP32, FP16, BF16", "restrictions": "Only the first output `Y` is supported."},
        "LeakyRelu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Less": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "LessOrEqual": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Log": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "LogSoftmax": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Loop": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "Scan output length cannot be dynamic. The shape of Loop carried dependencies must "
            "be the same across all loop iterations.",
        },
        "LRN": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "LSTM": {
            "types": "FP32, FP16, BF16",
            "restrictions": "For bidirectional LSTMs, activation functions must be the same for both the "
            "forward and reverse pass. `input_forget` attribute must be 0. `layout` attribute "
            "must be 0.",
        },
        "LpNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "LpPool": {"types": "FP32, FP16, BF16", "restrictions": "`dilations` must be empty or all ones"},
        "MatMul": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Max": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "MaxPool": {
            "types": "FP32, FP16, BF16",
            "restrictions": "2D or 3D pooling only. `Indices` output tensor unsupported. `dilations` must "
            "be empty or all ones",
        },
        "Mean": {"types": "FP32, FP16, BF16, FP8, INT32, INT64", "restrictions": ""},
        "MeanVarianceNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Min": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Mish": {"types": "FP32, FP16", "restrictions": ""},
        "Mod": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Mul": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Neg": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "NonMaxSuppression": {"types": "FP32, FP16", "restrictions": ""},
        "NonZero": {"types": "FP32, FP16", "restrictions": ""},
        "Not": {"types": "BOOL", "restrictions": ""},
        "OneHot": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`depth` must be a build-time constant",
        },
        "Or": {"types": "BOOL", "restrictions": ""},
        "Pad": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "ParametricSoftplus": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Pow": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "PRelu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "QuantizeLinear": {"types": "FP32, FP16, BF16", "restrictions": "`y_zero_point` must be 0"},
        "RandomNormal": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "RandomNormalLike": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "RandomUniform": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "RandomUniformLike": {"types": "FP32, FP16, BF16", "restrictions": "`seed` value is ignored by TensorRT"},
        "Range": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Reciprocal": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "ReduceL1": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceL2": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceLogSum": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceLogSumExp": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceMax": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceMean": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceMin": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceProd": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceSum": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "ReduceSumSquare": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": "`axes` must be an initializer"},
        "Relu": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Reshape": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Resize": {
            "types": "FP32, FP16, BF16",
            "restrictions": "Supported resize transformation modes: `half_pixel`, `pytorch_half_pixel`, "
            "`tf_half_pixel_for_nn`, `asymmetric`, and `align_corners`.<br />Supported "
            "resize modes: `nearest`, `linear`.<br />Supported nearest modes: `floor`, "
            "`ceil`, `round_prefer_floor`, `round_prefer_ceil`.<br />Supported aspect ratio "
            "policy: `stretch`.<br />When `scales` is a tensor input, `axes` must be an iota "
            "vector of length rank(input).<br />Antialiasing is not supported.",
        },
        "ReverseSequence": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "RMSNormalization": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "RNN": {
            "types": "FP32, FP16, BF16",
            "restrictions": "For bidirectional RNNs, activation functions must be the same for both the forward "
            "and reverse pass",
        },
        "RoiAlign": {"types": "FP32, FP16", "restrictions": ""},
        "RotaryEmbedding": {"types": "FP32, FP16, BF16", "restrictions": "`position_ids` must be INT64"},
        "Round": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "STFT": {
            "types": "FP32",
            "restrictions": "`frame_step` and `window` must be an initializer. Input must be real-valued.",
        },
        "ScaledTanh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Scan": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Scatter": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "ScatterElements": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "ScatterND": {
            "types": "FP32, FP16, BF16, INT32, INT64",
            "restrictions": "`reduction` other than `none` is not supported",
        },
        "Selu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Shape": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Shrink": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Sigmoid": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Sign": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Sin": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Sinh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Size": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Slice": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Softmax": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Softplus": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Softsign": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "SpaceToDepth": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Split": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Sqrt": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Squeeze": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`axes` must be resolvable to a constant.",
        },
        "Sub": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Sum": {"types": "FP32, FP16, BF16, INT32, INT64", "restrictions": ""},
        "Tan": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Tanh": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "TensorScatter": {
            "types": "FP32, FP16, BF16, INT32",
            "restrictions": "`past_cache` and `update` must be 4D. `axis` must be -2.",
        },
        "ThresholdedRelu": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Tile": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "TopK": {
            "types": "FP32, FP16, BF16, INT32, INT64",
            "restrictions": "`sorted` must be 1. `K` input must be less than 3840.",
        },
        "Transpose": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Trilu": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Unsqueeze": {
            "types": "FP32, FP16, BF16, INT32, INT64, BOOL",
            "restrictions": "`axes` must be resolvable to a constant.",
        },
        "Upsample": {"types": "FP32, FP16, BF16", "restrictions": ""},
        "Where": {"types": "FP32, FP16, BF16, INT32, INT64, BOOL", "restrictions": ""},
        "Xor": {"types": "BOOL", "restrictions": ""},
    },
}

UNSUPPORTED = {
    "10.3": [
        "AffineGrid",
        "Bernoulli",
        "BitShift",
        "BitwiseAnd",
        "BitwiseNot",
        "BitwiseOr",
        "BitwiseXor",
        "BlackmanWindow",
        "Col2Im",
        "CenterCropPad",
        "Compress",
        "ConcatFromSequence",
        "ConvInteger",
        "DFT",
        "Det",
        "DynamicQuantizeLinear",
        "HammingWindow",
        "HannWindow",
        "ImageDecoder",
        "MatMulInteger",
        "MaxRoiPool",
        "MaxUnpool",
        "MelWeightMatrix",
        "Multinomial",
        "NegativeLogLikelihoodLoss",
        "Optional",
        "OptionalGetElement",
        "OptionalHasElement",
        "QLinearConv",
        "QLinearMatMul",
        "RegexFullMatch",
        "STFT",
        "SequenceAt",
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceErase",
        "SequenceInsert",
        "SequenceLength",
        "SequenceMap",
        "SoftmaxCrossEntropyLoss",
        "SplitToSequence",
        "StringConcat",
        "StringNormalizer",
        "StringSplit",
        "TfIdfVectorizer",
        "Unique",
    ],
    "10.15": [
        "AffineGrid",
        "Bernoulli",
        "BitShift",
        "BitwiseAnd",
        "BitwiseNot",
        "BitwiseOr",
        "BitwiseXor",
        "Col2Im",
        "CenterCropPad",
        "Compress",
        "ConcatFromSequence",
        "ConvInteger",
        "DFT",
        "Det",
        "DynamicQuantizeLinear",
        "ImageDecoder",
        "MatMulInteger",
        "MaxRoiPool",
        "MaxUnpool",
        "MelWeightMatrix",
        "Multinomial",
        "NegativeLogLikelihoodLoss",
        "Optional",
        "OptionalGetElement",
        "OptionalHasElement",
        "QLinearConv",
        "QLinearMatMul",
        "RegexFullMatch",
        "SequenceAt",
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceErase",
        "SequenceInsert",
        "SequenceLength",
        "SequenceMap",
        "SoftmaxCrossEntropyLoss",
        "SplitToSequence",
        "StringConcat",
        "StringNormalizer",
        "StringSplit",
        "TfIdfVectorizer",
        "Unique",
    ],
}

UNSUPPORTED_NOTES = {
    "10.3": {},
    "10.15": {
        "DynamicQuantizeLinear": "Not supported. TensorRT's IDynamicQuantize can be composed from ONNX operators in "
        "the form of a model local function."
    },
}


# --- what each table is, and the 11.x tables derived from the release notes -----------------------

#: version label -> "authoritative" (the parser's own matrix) or "derived" (release notes over a matrix)
AUTHORITY = {"10.3": "authoritative", "10.15": "authoritative"}
#: version label -> the releases it stands for
COVERS = {"10.3": "JetPack 6", "10.15": "10.15"}
#: version label -> where its table comes from, in a few words (SOURCES has the commits)
ORIGIN = {
    "10.3": "onnx-tensorrt 10.3-GA docs/operators.md and importers",
    "10.15": "onnx-tensorrt docs/operators.md at the 10.15 header (fa5aa9f)",
}

#: label -> (the table it starts from, the changes, the sources). ``add``: operators the parser
#: gains (types and restrictions as the notes give them, else those of its neighbours, said so);
#: ``change``: rows whose restrictions change; ``opsets``: the opset range.
DERIVED: dict[str, dict] = {
    "11.0": {
        "base": "10.15",
        "covers": "11.0-11.1",
        "origin": "10.15 + 11.0 notes: Swish",
        "opsets": (9, 24),
        "add": {
            "Swish": {
                "types": "FP32, FP16, BF16",
                "restrictions": "",
                "note": "types not given by the notes: those of ONNX's Swish-24 that TensorRT computes in "
                "(FP32, FP16, BF16), like Sigmoid",
            },
        },
        "change": {},
        "sources": [
            "NVIDIA/TensorRT:CHANGELOG.md@a892d22267d9cd2dedc1a0893e6892ac901f6d3d, '11.0 GA - 2026-6-2', "
            "Parsers: 'Added support for `Swish` operator' (release v11.0); 11.1 GA lists no operator change",
        ],
    },
    "11.2": {
        "base": "11.0",
        "covers": "11.2-11.4",
        "origin": "11.0 + 11.2 notes: DFT (plugin), 5-D GridSample",
        "opsets": (9, 24),
        "add": {
            "DFT": {
                "types": "FP32",
                "restrictions": "",
                "note": "built from TensorRT's cuFFT plugin (FFTPlugin, see PLUGINS): forward and inverse C2C, R2C "
                "and C2R transforms; types not given by the notes: FP32 assumed",
            },
        },
        "change": {
            "GridSample": {
                "types": "FP32, FP16, BF16",
                "restrictions": "Input must be 4D or 5D input.",
            },
        },
        "sources": [
            "NVIDIA/TensorRT release v11.2 (1dade06, 2026-08-04), Parsers: 'Added support for the DFT operator and "
            "5D GridSample operators'; Plugins: 'a new FFTPlugin ... to support the ONNX DFT operator'",
            "TensorRT 11.2.1 release notes (docs.nvidia.com/deeplearning/tensorrt/latest/getting-started/"
            "release-notes-11/11.2.1.html): 'Extends GridSample from 2D-only to 3D (rank-5 input) with FP32, FP16, "
            "and BF16'; 'a cuFFT-based plugin for the ONNX DFT operator'",
            "NVIDIA/TensorRT releases v11.3 (98adec8) and v11.4 (16ed063): no operator change",
        ],
    },
    "11.5": {
        "base": "11.2",
        "covers": "11.5+",
        "origin": "11.2 + 11.5 notes: opset 25",
        "opsets": (9, 25),
        "add": {},
        "change": {},
        "sources": [
            "onnx/onnx-tensorrt release/11.5-GA (7e30698) and NVIDIA/TensorRT release v11.5 (7fe18f0): 'Added "
            "support for ONNX opset 25 and updated the supported ONNX release to 1.22.0'; 'Added support for "
            "Squeeze when axis input is omitted'",
        ],
    },
}

for _label, _d in DERIVED.items():
    _rows = {op: dict(row) for op, row in SUPPORTED[_d["base"]].items()}
    for _op, _row in {**_d["add"], **_d["change"]}.items():
        _rows[_op] = {"types": _row["types"], "restrictions": _row["restrictions"]}
    SUPPORTED[_label] = _rows
    UNSUPPORTED[_label] = [op for op in UNSUPPORTED[_d["base"]] if op not in _d["add"]]
    UNSUPPORTED_NOTES[_label] = {}
    OPSETS[_label] = _d["opsets"]
    AUTHORITY[_label] = "derived"
    COVERS[_label] = _d["covers"]
    ORIGIN[_label] = _d["origin"]
    SOURCES[_label] = f"derived from {_d['base']}'s table by the release notes: " + "; ".join(_d["sources"])
del _label, _d, _rows

# --- what each parser refuses beyond its table -------------------------------------------------------

#: ONNX element types (TensorProto.DataType) -> the names the tables use
TYPE_NAMES = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "STRING",
    9: "BOOL",
    10: "FP16",
    11: "DOUBLE",
    12: "UINT32",
    13: "UINT64",
    14: "COMPLEX64",
    15: "COMPLEX128",
    16: "BF16",
    17: "FP8",  # FLOAT8E4M3FN
    18: "FP8E4M3FNUZ",
    19: "FP8E5M2",
    20: "FP8E5M2FNUZ",
    21: "UINT4",
    22: "INT4",
    23: "FP4",  # FLOAT4E2M1
}

#: the ONNX types each parser converts to a TensorRT type (``convertDtype`` in importerUtils.cpp: a
#: Cast to any other type is refused, "Unsupported cast!"); DOUBLE becomes FLOAT
PARSER_TYPES = {
    "10.3": ("DOUBLE", "FP32", "INT8", "UINT8", "FP16", "BF16", "BOOL", "INT32", "INT64", "FP8", "INT4"),
    "10.15": ("DOUBLE", "FP32", "INT8", "UINT8", "FP16", "BF16", "BOOL", "INT32", "INT64", "FP8", "INT4", "FP4"),
}
#: TensorRT's quantized types: made by QuantizeLinear only ("support is available only through
#: quantization from a floating-point type with higher precision", NOTES)
QUANTIZED_TYPES = ("INT8", "FP8", "INT4", "FP4")

# activationHelper: notInvalidType(inputs.at(0), {"INT32", "BOOL", "UINT8"})
_ACTIVATION: dict[int, tuple[str, ...]] = {0: ("INT32", "BOOL")}
_NOT_BOOL: dict[int, tuple[str, ...]] = {0: ("BOOL",)}
_NOT_INT: dict[int, tuple[str, ...]] = {0: ("INT32", "INT64")}
_FLOAT_ONLY: dict[int, tuple[str, ...]] = {0: ("INT32", "INT64", "INT8", "BOOL", "FP8", "INT4")}

#: op -> {input index: the types its importer refuses} ("Found unsupported input type of ..."), read
#: from the 10.3-GA importer (onnxOpImporters.cpp and importerUtils.cpp, notInvalidType and the
#: explicit type assertions). UINT8 refusals are left out: UINT8 is refused everywhere but a network
#: input or output (the uint8 rule). The 10.15 importer is not published where this was written;
#: its activationHelper (importerUtils.cpp@fa5aa9f) refuses the same types, and the other refusals
#: are assumed unchanged for 10.15 and 11.x.
PARSER_REFUSES: dict[str, dict[int, tuple[str, ...]]] = {
    **{
        op: _ACTIVATION
        for op in (
            "Elu",
            "Gelu",
            "HardSigmoid",
            "HardSwish",
            "LeakyRelu",
            "Mish",
            "ParametricSoftplus",
            "Relu",
            "ScaledTanh",
            "Selu",
            "Sigmoid",
            "Softplus",
            "Softsign",
            "Tanh",
            "ThresholdedRelu",
        )
    },
    **{op: _NOT_BOOL for op in ("DepthToSpace", "SpaceToDepth", "Resize", "Upsample")},
    **{
        op: _NOT_BOOL
        for op in (
            "ReduceL1",
            "ReduceL2",
            "ReduceLogSum",
            "ReduceLogSumExp",
            "ReduceMax",
            "ReduceMean",
            "ReduceMin",
            "ReduceProd",
            "ReduceSum",
            "ReduceSumSquare",
        )
    },
    "GridSample": {0: ("BOOL",), 1: ("BOOL",)},
    "Gemm": _NOT_INT,
    "MatMul": _NOT_INT,
    "PRelu": {0: ("INT32", "INT64"), 1: ("INT32", "INT64")},
    "Hardmax": {0: ("INT64", "INT32", "INT8", "BOOL")},
    "MeanVarianceNormalization": _FLOAT_ONLY,
    "InstanceNormalization": {0: ("BF16", *_FLOAT_ONLY[0])},  # "Inputs must be either FLOAT or FLOAT16"
}

#: version-specific rules of each parser, with where they come from (docs/operators.md)
PARSER_RULES = {
    "scatternd-reduction": {
        "10.3": 'onnxOpImporters.cpp importScatterND: ASSERT(!attrs.count("reduction")) - any reduction '
        "attribute, 'none' included, is refused (jonhoo/onnx-tensorrt 10.3-GA@62bdde2, the same in onnx/"
        "onnx-tensorrt 10.0-GA and 10.1-GA); matrix: '`reduction` is not supported'",
        "10.15": "matrix: '`reduction` other than `none` is not supported' (onnx/onnx-tensorrt docs/operators.md"
        "@fa5aa9f)",
    },
    "cumsum-axis": {
        "10.3": 'onnxOpImporters.cpp importCumSum: assertIsWeights(inputs.at(1), "Axis input for CumSum must be an '
        "initializer!\") (10.3-GA@62bdde2): an initializer or a Constant node's output; matrix: '`axis` must be "
        "an initializer'",
        "10.15": "matrix: '`axis` must be a build-time constant' (docs/operators.md@fa5aa9f): a graph input is "
        "refused; a computed axis must fold to a constant when TensorRT builds",
    },
}

#: operators the parser builds from a TensorRT plugin, found in the plugin registry when the graph is
#: parsed and when the plan is loaded: op -> (plugin name, plugin version, when). Without NVIDIA's
#: plugin library (libnvinfer_plugin, registered by trt.init_libnvinfer_plugins) the parser fails
#: with "ROIAlign plugin was not found in the plugin registry!" (10.3-GA importRoiAlign).
PLUGINS: dict[str, dict[str, tuple[str, str | None, str]]] = {
    "10.3": {
        "RoiAlign": ("ROIAlign_TRT", "2", "always"),
        "DeformConv": ("ModulatedDeformConv2d", "1", "always"),
        "ScatterElements": ("ScatterElements", "2", "with a reduction other than none"),
    },
}
PLUGINS["10.15"] = dict(PLUGINS["10.3"])
PLUGINS["11.0"] = dict(PLUGINS["10.15"])
# the FFT plugin's registry name is not given by the notes: its library is NVIDIA's plugin library too
PLUGINS["11.2"] = {**PLUGINS["11.0"], "DFT": ("FFTPlugin", None, "always")}
PLUGINS["11.5"] = dict(PLUGINS["11.2"])

#: the input ranks GridSample takes: 4-D ("Input must be 4D input.") until 11.2 adds 5-D
GRIDSAMPLE_RANKS = {"10.3": (4,), "10.15": (4,), "11.0": (4,), "11.2": (4, 5), "11.5": (4, 5)}
