"""`convcore bench`: whole-model latency and GFLOP/s of compiled plans (or eager with --eager), with onnxruntime and
PyTorch measured beside (--peers), and the per-op time split of the plan (--profile)."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

import numpy as np

from ._common import (UsageError, add_device_argument, add_threads_argument, check_device, error_message, format_table,
                      is_onnx_path, load_model, log, parse_int_list, runner, set_threads)

DEFAULT_MODELS = ("mobilenet_v2", "efficientnet_lite0", "resnet50")


def add_arguments(parser):
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"zoo names or .onnx files (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--batch", default="1,8", metavar="N[,N...]", help="batch sizes (default 1,8)")
    add_threads_argument(parser)
    parser.add_argument("--peers", action="store_true",
                        help="also time onnxruntime (via convcore.onnx.export) and PyTorch (torchvision models), "
                             "when installed")
    parser.add_argument("--min-time", type=float, default=1.0, metavar="S",
                        help="seconds of timed runs per measurement (default 1.0; at least 3 runs)")
    parser.add_argument("--warmup", type=int, default=1, metavar="N", help="untimed runs first (default 1)")
    parser.add_argument("--eager", action="store_true", help="time eager model(x) instead of the compiled plan")
    parser.add_argument("--profile", action="store_true",
                        help="also print each compiled plan's ops with their kernels, GFLOP and share of the time")
    parser.add_argument("--json", action="store_true", help="print the results as JSON lines")
    add_device_argument(parser)


def _measure(fn, x, warmup, min_time):
    """Median seconds of fn(x) over at least 3 runs and at least `min_time` seconds of runs."""
    for _ in range(warmup):
        fn(x)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _time_onnxruntime(path, shapes, threads, warmup, min_time, gpu=None):
    """Median seconds per input shape of an onnxruntime session on the ONNX file (runs in a worker process): the CPU
    provider, or the CUDA provider on GPU `gpu` (numpy in and out, so the copies are included)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if gpu is None:
        providers = ["CPUExecutionProvider"]
    else:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise LookupError("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
        providers = [("CUDAExecutionProvider", {"device_id": gpu})]
    session = ort.InferenceSession(path, options, providers=providers)
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    return [_measure(lambda x: session.run(None, {name: x}), rng.standard_normal(shape, dtype=np.float32), warmup,
                     min_time) for shape in shapes]


def _time_torch(model_name, shapes, threads, warmup, min_time, gpu=None, precision="fp32"):
    """Median seconds per input shape of torchvision's `model_name` (random weights; runs in a worker process), on
    the CPU or on GPU `gpu` (cuDNN; inputs on the GPU; TF32 only with precision 'tf32', bf16 autocast with 'bf16')."""
    import contextlib

    import torch
    import torchvision

    if model_name not in torchvision.models.list_models(module=torchvision.models):
        raise LookupError(f"torchvision has no {model_name}")
    torch.set_num_threads(threads)
    model = torchvision.models.get_model(model_name, weights=None).eval()
    device = "cpu"
    if gpu is not None:
        if not torch.cuda.is_available():
            raise LookupError("this PyTorch has no CUDA")
        device = f"cuda:{gpu}"
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        model = model.to(device)
    autocast = torch.autocast("cuda", torch.bfloat16) if gpu is not None and precision == "bf16" else \
        contextlib.nullcontext()
    rng = np.random.default_rng(0)
    times = []
    with torch.inference_mode(), autocast:
        for shape in shapes:
            x = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).to(device)

            def call(v):
                model(v)
                if gpu is not None:
                    torch.cuda.synchronize()

            times.append(_measure(call, x, max(warmup, 3 if gpu is not None else 0), min_time))
    return times


def _isolated(fn, *args):
    """Run fn(*args) in a fresh process, so no engine's thread pool (spinning OpenMP or onnxruntime workers)
    competes with another's, and return its result."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _peer_times(engine, spec, loaded, shapes, threads, args, folder):
    """Seconds per shape of one peer engine, each in its own process; LookupError / ImportError when unavailable."""
    import importlib.util

    if engine == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            from convcore._optional import missing

            raise missing("onnxruntime", "timing onnxruntime")
        path = spec
        if not is_onnx_path(spec):
            from convcore.onnx import export

            path = os.path.join(folder, f"{spec}.onnx")
            export(loaded.module, path, input_shape=shapes[0])
        log(f"bench: {loaded.name} onnxruntime ...")
        return _isolated(_time_onnxruntime, path, shapes, threads, args.warmup, args.min_time, args.gpu)
    if is_onnx_path(spec):
        raise LookupError("no PyTorch model for an ONNX file")
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        raise LookupError("timing PyTorch needs torch and torchvision: pip install torch torchvision")
    log(f"bench: {loaded.name} pytorch ...")
    return _isolated(_time_torch, spec, shapes, threads, args.warmup, args.min_time, args.gpu, args.precision)


def _peers(spec, loaded, shapes, threads, args, folder, skipped):
    """[(engine, [seconds per shape])] for onnxruntime and PyTorch; an unavailable or failing peer is skipped with a
    note on stderr and in `skipped` (engine -> reason, for the table's footer), the benchmark goes on."""
    results = []
    for engine in ("onnxruntime", "pytorch"):
        try:
            results.append((engine, _peer_times(engine, spec, loaded, shapes, threads, args, folder)))
        except Exception as exc:
            reason = error_message(exc)
            log(f"bench: {engine} skipped for {loaded.name}: {reason}")
            skipped.setdefault(engine, reason)
    return results


def run(args):
    batches = parse_int_list(args.batch, "--batch")
    if args.min_time < 0 or args.warmup < 0:
        raise UsageError("--min-time and --warmup: expected non-negative values")
    threads = set_threads(args.threads)
    args.gpu = check_device(args)
    specs = args.models or list(DEFAULT_MODELS)
    from convcore import models

    loaded_models = [load_model(spec, need_weights=False) for spec in specs]
    results = []
    skipped = {}

    def report(model, batch, engine, seconds, gflops):
        record = {"model": model, "batch": batch, "engine": engine, "device": args.device, "threads": threads,
                  "ms_per_image": round(seconds * 1000 / batch, 3),
                  "gflops_per_s": round(gflops * batch / seconds, 2) if gflops else None}
        results.append(record)
        if args.json:
            print(json.dumps(record), flush=True)

    with tempfile.TemporaryDirectory(prefix="convcore-bench-") as folder:
        for spec, loaded in zip(specs, loaded_models):
            gflops = float(models.summary(loaded.module, loaded.input_size)["gflops"])
            if loaded.fixed_batch and batches != [loaded.fixed_batch]:
                log(f"bench: {loaded.name} takes batches of {loaded.fixed_batch} only")
            shapes = [(batch,) + tuple(loaded.input_size) for batch in ([loaded.fixed_batch] if loaded.fixed_batch
                                                                        else batches)]
            for shape in shapes:
                run_model, engine = runner(loaded, shape[0], args.eager, args.device, args.precision)
                log(f"bench: {loaded.name} batch {shape[0]} convcore ({engine}) ...")
                x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
                timed_call = run_model
                if args.gpu is not None:  # input and outputs stay on the GPU, as a GPU pipeline keeps them
                    import convcore.cuda

                    host_x, x = x, convcore.cuda.to_device(x, args.gpu)
                    outs = run_model(x)
                    plan = run_model
                    timed_call = lambda v, plan=plan, outs=outs: plan.run(v, out=outs)  # noqa: E731
                report(loaded.name, shape[0], f"convcore ({engine})", _measure(timed_call, x, args.warmup,
                                                                               args.min_time), gflops)
                if args.gpu is not None:
                    x = host_x
                if args.profile and hasattr(run_model, "summary"):
                    run_model.summary(x)
            if args.peers:
                for engine, times in _peers(spec, loaded, shapes, threads, args, folder, skipped):
                    for shape, seconds in zip(shapes, times):
                        report(loaded.name, shape[0], engine, seconds, gflops)
    if not args.json:
        order = {name: i for i, name in reversed(list(enumerate(r["model"] for r in results)))}
        results.sort(key=lambda r: (order[r["model"]], r["batch"]))  # stable: engines keep their order
        rows = [(r["model"], r["batch"], r["engine"], f"{r['ms_per_image']:.2f}",
                 "-" if r["gflops_per_s"] is None else f"{r['gflops_per_s']:.1f}") for r in results]
        print(format_table(("model", "batch", "engine", "ms/image", "GFLOP/s"), rows, "lrlrr"))
        where = f"GPU {args.gpu}, {args.precision}" if args.gpu is not None else f"{threads} threads"
        print(f"({where}; zoo models with installed pretrained weights, else random ones; median of >= 3 "
              f"runs and >= {args.min_time:g} s per row)")
        for engine, reason in skipped.items():
            print(f"(peer {engine} skipped: {reason})")
    return 0
