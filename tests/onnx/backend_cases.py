"""The ONNX backend test cases convcore runs (tests/onnx/test_onnx_backend.py) and the one list of those it excludes,
each with its reason. docs/onnx.md shows the same list (tests/onnx/test_onnx_docs.py keeps the two in step).

`INCLUDE`: every node test of the ops issue 11 covers (by the test's name: the op, then variants), the real-model
tests the installed onnx ships (its "light" CNNs), and the pytorch-converted / pytorch-operator / simple model tests.
"""

OPS = [
    # convolutions and pooling
    "conv", "basic_conv", "convtranspose", "averagepool", "maxpool", "lppool", "globalaveragepool", "globalmaxpool",
    # normalization
    "batchnorm", "instancenorm", "layer_normalization", "group_normalization", "lrn",
    # padding, dense
    "constant_pad", "edge_pad", "reflect_pad", "wrap_pad", "gemm", "matmul",
    # activations
    "clip", "relu", "leakyrelu", "prelu", "elu", "selu", "celu", "softplus", "softsign", "gelu", "mish", "sigmoid",
    "hardsigmoid", "hardswish", "tanh", "erf", "shrink",
    # arithmetic
    "add", "sub", "mul", "div", "pow", "sqrt", "exp", "log", "neg", "abs", "reciprocal", "min", "max", "sum", "mean",
    # shape and data movement
    "reshape", "flatten", "transpose", "squeeze", "unsqueeze", "concat", "split", "slice", "gather", "expand", "tile",
    "depthtospace", "spacetodepth",
    # reductions, softmax
    "reduce_mean", "reduce_max", "reduce_min", "reduce_sum", "reduce_sum_square", "reduce_l1", "reduce_l2",
    "reduce_log_sum", "reduce_log_sum_exp", "reduce_prod", "softmax", "logsoftmax",
    # recurrent heads
    "lstm", "gru",
    # resizing
    "resize", "upsample",
    # identity and constant folding
    "identity", "dropout", "training_dropout", "shape", "size", "cast", "castlike", "constant", "constantofshape",
    "range",
]
REAL = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
        "vgg19", "zfnet512"]

# A test name is test_<op>[_<variant>]_cpu; `min` must not take minimum-like names of other ops, hence the explicit
# separator. Uppercase names are the pytorch-converted tests, test_operator_* the pytorch-operator ones.
OTHER_OPS = r"(?!_elements|nd|_to_sequence)"  # GatherElements, GatherND, SplitToSequence are other ops
INCLUDE = [rf"^test_({'|'.join(OPS)}){OTHER_OPS}(_.*)?_cpu$", rf"^test_({'|'.join(REAL)})_cpu$",
           r"^test_[A-Z]\w*_cpu$", r"^test_operator_\w+_cpu$", r"^test_(single_relu_model|expand_shape_model\d)_cpu$"]

# pattern (re.search on the test name) -> why convcore does not run it. Only cases no CNN inference engine needs.
EXCLUDE = {
    # element types: convcore computes float32 tensors (integer tensors only as constants: shapes, axes, indices)
    r"_(u?int(2|4|8|16|32|64)|float16|bfloat16|double|float64|bool)(_|$)": "a tensor type convcore does not compute",
    r"^test_cast(like)?_": "a tensor type convcore does not compute (casts between float32 and other types)",
    r"^test_reduce_log_sum_exp_(default_axes|do_not|keepdims|negative)":
        "a tensor type convcore does not compute (float64)",
    r"^test_(edge|reflect|wrap)_pad_cpu$": "a tensor type convcore does not compute (int32)",
    r"^test_operator_(add_|addconstant|non_float_params)": "a tensor type convcore does not compute (float64, int64)",
    r"^test_Embedding": "a tensor type convcore does not compute (int64 data: an embedding lookup)",
    r"^test_(shape|size)(_|$)": "a tensor type convcore does not compute (int64 outputs)",
    r"^test_constantofshape_int": "a tensor type convcore does not compute (int32 outputs)",
    r"^test_identity_(opt|sequence)": "sequence and optional values: convcore computes tensors",
    r"^test_reduce_log_sum_exp_empty_set_expanded": "a tensor type convcore does not compute (a float64 intermediate)",
    r"^test_range_float_type_positive_delta_expanded": "control flow (the function expansion is a Loop)",
    # training
    r"^test_batchnorm_\w+_training_mode": "training only (batch statistics, running-statistics outputs)",
    r"^test_training_dropout(_default|_mask|_zero_ratio_mask|_cpu)": "training only (random dropout, mask output)",
    r"^test_dropout_default_mask": "training only (the mask output is a bool tensor)",
    r"^test_maxpool_with_argmax": "the Indices output is an int64 tensor (used for unpooling in training)",
    # volumetric transposed convolution
    r"^test_convtranspose_3d": "a 3-D transposed convolution (convcore's transposed convolutions are 1-D and 2-D)",
}
