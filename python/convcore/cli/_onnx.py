"""The `convcore export` and `convcore run` commands as plain functions (the console script wires them in).

    $ convcore export resnet18 resnet18.onnx --weights resnet18-f37072fd.pth --opset 17 --batch dynamic
    $ convcore run resnet18.onnx image.npy --output logits.npy        # a compiled plan; --eager for model(x)
"""

import math
import os

import numpy as np


def export_command(model_name, out_path, weights=None, opset=17, batch="dynamic", input_size=None):
    """Export a zoo model to an ONNX file and print a one-line summary.

    Args:
        model_name: a name from `convcore.models.list_models()`.
        out_path: the .onnx file to write.
        weights: optional checkpoint path (.pth, .safetensors, .npz) loaded with `convcore.models.get_model`.
        opset: ONNX opset, 13 to 21.
        batch: "dynamic" (a named batch dimension "N") or a fixed positive batch size.
        input_size: optional (H, W) or (C, H, W); default the model's registered input size.

    Returns:
        The `onnx.ModelProto` written.
    """
    from .. import models
    from ..onnx import export

    info = models.get_model_info(model_name)
    if batch == "dynamic":
        dynamic, size = True, 1
    elif isinstance(batch, (int, np.integer)) and not isinstance(batch, bool) and batch >= 1 or (
            isinstance(batch, str) and batch.isdigit() and int(batch) >= 1):
        dynamic, size = False, int(batch)
    else:
        raise ValueError(f"expected batch 'dynamic' or a positive int (got {batch!r})")
    shape = tuple(info.input_size)
    if input_size is not None:
        input_size = tuple(int(s) for s in input_size)
        shape = input_size if len(input_size) == 3 else (shape[0], *input_size)
    model = models.get_model(model_name, weights=weights)
    proto = export(model, out_path, input_shape=(size, *shape), opset=int(opset), dynamic_batch=dynamic)
    print(f"wrote {out_path}: {model_name}, opset {opset}, input {'N' if dynamic else size}x"
          f"{'x'.join(map(str, shape))}, {len(proto.graph.node)} nodes, {os.path.getsize(out_path) / 1e6:.1f} MB")
    return proto


def run_command(onnx_path, input_npy, output_npy=None, eager=False, precision="auto"):
    """Run an ONNX model with convcore on an input stored as .npy, print the output summary, optionally save it.

    Args:
        onnx_path: the model (loaded with `convcore.onnx.load`).
        input_npy: a .npy file holding the input batch (float32, or another float dtype converted to float32).
        output_npy: optional .npy path for the output (.npz when the model has several outputs).
        eager: run the imported module op by op instead of compiling it (`convcore.compile`).
        precision: the compiled plan's ("auto": int8 for a quantized file; "fp32"; "int8": refuses a float file;
            "bf16": bf16 convolutions, on CPUs with AMX-BF16 or AVX512-BF16).

    Returns:
        The output array (a tuple of arrays for several outputs).
    """
    from ..onnx import load
    from ..plan import compile as compile_plan

    try:
        net = load(onnx_path)
    except ValueError as exc:  # name the file: the importer's messages speak of its contents
        raise ValueError(f"{os.fspath(onnx_path)}: {exc}") if os.fspath(onnx_path) not in str(exc) else exc from None
    x = _load_input(input_npy)
    if x.dtype.kind != "f":
        raise ValueError(f"expected a float input array in {input_npy} (got dtype {x.dtype})")
    x = np.ascontiguousarray(x, np.float32)
    runner = net if eager else compile_plan(net, precision=precision)
    y = runner(x)
    outputs = y if isinstance(y, tuple) else (y,)
    for name, out in zip(net.graph.outputs, outputs):
        line = f"{name}: shape {out.shape}"
        if out.ndim == 2:
            line += f", argmax {out.argmax(axis=1).tolist()}"
        print(line)
    if output_npy is not None:
        if isinstance(y, tuple):
            np.savez(output_npy, **dict(zip(net.graph.outputs, outputs)))
        else:
            np.save(output_npy, y)
    return y


def _load_input(path):
    """The array in the .npy file `path`, or a ValueError naming the file (empty, truncated, not a .npy, an .npz, a
    header declaring more data than the file holds)."""
    _check_npy_header(path)
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"input {path}: no such file") from None
    except EOFError:  # numpy's error for an empty file
        raise ValueError(f"input {path}: expected a .npy array file (got an empty file)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"input {path}: expected a .npy array file ({exc})") from None
    if not isinstance(x, np.ndarray):  # an .npz archive
        x.close()
        raise ValueError(f"input {path}: expected a .npy file holding one array (got an .npz archive)")
    return x


def _check_npy_header(path):
    """A .npy header's shape and dtype against the bytes present and the tensor bound, before numpy allocates the
    array it declares (a 128-byte file can declare 4 TiB: a MemoryError, or swapping, otherwise)."""
    from .._validate import MAX_ELEMENTS

    try:
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                return  # not a .npy (empty, an .npz, garbage): np.load says which
            f.seek(0)
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            start, size = f.tell(), f.seek(0, 2)
    except (OSError, ValueError):
        return  # a missing file or a malformed header: np.load reports it
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise ValueError(f"input {path}: its header declares shape {shape} ({count} elements); at most {MAX_ELEMENTS} "
                         f"are supported")
    if dtype.itemsize and count * dtype.itemsize > size - start:
        raise ValueError(f"input {path}: its header declares shape {shape} of {dtype} ({count * dtype.itemsize} bytes "
                         f"of data), but the file holds {size - start}")


def _export_from_args(a):
    from ._common import UsageError, check_weights, set_threads

    set_threads(a.threads)
    from .. import models

    try:
        models.get_model_info(a.model)
    except ValueError as exc:
        raise UsageError(f"model: {exc}") from None
    if a.weights is not None:
        check_weights(a.model, a.weights)
    if a.batch != "dynamic" and not (a.batch.isdigit() and int(a.batch) >= 1):
        raise UsageError(f"--batch: expected 'dynamic' or a positive integer (got {a.batch!r})")
    return export_command(a.model, a.out, a.weights, a.opset, a.batch, a.input_size)


def _run_from_args(a):
    from ._common import UsageError, set_threads

    set_threads(a.threads)
    if (a.input is None) == (a.input_flag is None):
        raise UsageError("run: expected the input .npy once, as INPUT or --input (got "
                         f"{'neither' if a.input is None else 'both'})")
    path = a.input or a.input_flag
    for name, value in (("model", a.model), ("input", path)):
        if not os.path.isfile(value):
            raise UsageError(f"{name}: no such file: {value}")
    if a.eager and a.precision != "auto":
        raise UsageError("--precision: applies to compiled plans (not --eager)")
    return run_command(a.model, path, a.output, a.eager, a.precision)


def add_subcommands(subparsers):
    """Add `export` and `run` parsers to an argparse subparsers object; each sets `func(args)` to call."""
    from ._common import add_threads_argument

    text = "export a zoo model to an ONNX file (needs the onnx package: pip install 'convcore[onnx]')"
    export = subparsers.add_parser("export", help=text, description=text)
    export.add_argument("model", metavar="MODEL", help="zoo model name (see 'convcore models')")
    export.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument("--weights", metavar="WEIGHTS",
                        help="weights to export with: DEFAULT, a published name, a checkpoint file or a URL "
                             "(default: random weights)")
    export.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset, 13 to 21 (default 17)")
    export.add_argument("--batch", default="dynamic", metavar="dynamic|N",
                        help="'dynamic' (a named batch dimension) or a fixed batch size (default: dynamic)")
    export.add_argument("--input-size", type=int, nargs="+", metavar="PIXELS",
                        help="H W or C H W (default: the model's registered input size)")
    add_threads_argument(export)
    export.set_defaults(func=_export_from_args)
    text = "run an ONNX model on a .npy input and print (or save) its outputs (needs the onnx package)"
    run = subparsers.add_parser("run", help=text, description=text)
    run.add_argument("model", metavar="MODEL.onnx", help="the ONNX file")
    run.add_argument("input", nargs="?", metavar="INPUT.npy", help="the input batch, NCHW (or use --input)")
    run.add_argument("--input", dest="input_flag", metavar="X.npy", help="the input batch, as an option")
    run.add_argument("--output", metavar="Y.npy", help="write the output here (.npz for several; default: only print)")
    run.add_argument("--eager", action="store_true", help="run op by op (the reference) instead of a compiled plan")
    run.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8", "bf16"),
                     help="the plan's arithmetic: auto (default: int8 for a quantized QDQ file, else fp32), fp32 "
                          "(a quantized file's quantize / dequantize steps in float), int8, or bf16 (CPUs with "
                          "AMX-BF16 or AVX512-BF16)")
    add_threads_argument(run)
    run.set_defaults(func=_run_from_args)
