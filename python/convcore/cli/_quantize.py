"""`convcore quantize`: post-training int8 quantization of a zoo model or an ONNX file (`convcore.quantize`) into a
QDQ ONNX file that convcore, onnxruntime and OpenVINO run in int8.

    $ convcore quantize resnet50 --weights DEFAULT --calib photos/ --out resnet50_int8.onnx
    $ convcore classify --model resnet50_int8.onnx photos/          # int8 (a quantized file: --precision auto)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from ._common import CLIError, UsageError, WEIGHTS_HELP, add_threads_argument, load_model, log, set_threads


def add_arguments(parser):
    parser.add_argument("model", metavar="NAME|FILE.onnx", help="zoo model name or ONNX file (float32)")
    parser.add_argument("--out", required=True, metavar="FILE.onnx", help="where to write the quantized QDQ model")
    parser.add_argument("--weights", metavar="WEIGHTS",
                        help=f"for a zoo model: {WEIGHTS_HELP} (default: weights already on this machine)")
    parser.add_argument("--preset", metavar="NAME", help="use this zoo model's preprocessing (for ONNX files)")
    parser.add_argument("--calib", nargs="*", metavar="IMAGE|DIR",
                        help="calibration images and folders (default: the bundled sample photos)")
    parser.add_argument("--count", type=int, default=32, metavar="N",
                        help="calibration inputs (default 32: the images, then their mirror images, cycled)")
    parser.add_argument("--method", default="mse", choices=("mse", "percentile", "minmax"),
                        help="how activation ranges are chosen (default mse)")
    parser.add_argument("--exclude", default="", metavar="LAYER,...", help="layers to keep in float")
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per layer (default: per channel)")
    parser.add_argument("--no-bias-correction", action="store_true", help="do not correct the biases")
    parser.add_argument("--first-layer", action="store_true",
                        help="quantize the layers reading the input image too (default: they stay float)")
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def calibration_inputs(loaded, paths=None, count=32, progress=False):
    """`count` preprocessed inputs (count, C, H, W) from image `paths` (default: the bundled photos), each image and
    its mirror image in turn, cycled until there are `count`."""
    from convcore import data
    from convcore._optional import require
    from convcore.transforms import load_image

    from ._classify_common import image_paths

    require("PIL", "decoding images")
    files = list(image_paths(paths)) if paths else list(data.sample_images())
    if not files:
        raise CLIError(f"--calib: no images found in {', '.join(paths or [])}")
    bar = None
    if progress and sys.stderr.isatty():
        try:
            from tqdm import tqdm

            bar = tqdm(total=min(count, len(files)), unit="img", file=sys.stderr, leave=False, desc="calibration")
        except ImportError:
            pass
    arrays = []
    for path in files[:count]:
        try:
            arrays.append(np.asarray(loaded.preprocess(load_image(path), warn=False), np.float32))
        except Exception as exc:  # an unreadable file: reported, skipped
            log(f"convcore: skipped {path}: {exc}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if not arrays:
        raise CLIError("--calib: none of the images could be read")
    variants = arrays + [a[:, :, ::-1] for a in arrays]
    return np.ascontiguousarray(np.stack([variants[i % len(variants)] for i in range(count)]))


def quantize_loaded(loaded, paths=None, count=32, progress=False, **options):
    """`convcore.quantize` of a loaded model on `calibration_inputs` (batches of 8)."""
    import convcore

    x = calibration_inputs(loaded, paths, count, progress)
    log(f"convcore: quantizing {loaded.name} to int8 on {len(x)} calibration inputs")
    model = loaded.module
    return convcore.quantize(model, [x[i:i + 8] for i in range(0, len(x), 8)], input_shape=(1,) + x.shape[1:],
                             **options)


def run(args):
    if args.count < 1:
        raise UsageError(f"--count: expected a positive integer (got {args.count})")
    if not args.out.lower().endswith(".onnx"):
        raise UsageError(f"--out: expected a .onnx file (got {args.out})")
    missing = [p for p in args.calib or [] if not os.path.exists(p)]
    if missing:
        raise UsageError(f"--calib: no such file or folder: {missing[0]}")
    set_threads(args.threads)
    loaded = load_model(args.model, args.weights, args.preset)
    start = time.perf_counter()
    exclude = [name for name in args.exclude.split(",") if name]
    q = quantize_loaded(loaded, args.calib, args.count, not args.no_progress, method=args.method, exclude=exclude,
                        per_channel=not args.per_tensor, bias_correction=not args.no_bias_correction,
                        first_layer=args.first_layer)
    seconds = time.perf_counter() - start
    import convcore.onnx

    convcore.onnx.export(q, args.out)
    print(q.report())
    layers = sum(r.quantized for r in q.layers)
    log(f"convcore: wrote {args.out}: {layers} of {len(q.layers)} layers int8 ({seconds:.1f} s)")
    return 0
