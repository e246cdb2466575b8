"""`convcore bench`: whole-model timings of compiled plans (or eager with --eager): compile time, first-call latency,
p50 / p90 / p99 latency and throughput, in latency mode (one stream) or throughput mode (--streams N, like OpenVINO's
benchmark_app), with onnxruntime and PyTorch measured beside (--peers), the per-op time split of the plan (--profile,
each op's fastest of its repeats) and a JSON report (--report FILE)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time

import numpy as np

from ._common import (CLIError, UsageError, add_device_argument, add_threads_argument, check_device, error_message,
                      format_table, is_onnx_path, load_model, log, parse_int_list, runner, set_threads)

DEFAULT_MODELS = ("mobilenet_v2", "efficientnet_lite0", "resnet50")
PROFILE_REPEATS = 10


def add_arguments(parser):
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"zoo names or .onnx files (default: {' '.join(DEFAULT_MODELS)})")
    parser.add_argument("--batch", default="1,8", metavar="N[,N...]", help="batch sizes (default 1,8)")
    add_threads_argument(parser)
    parser.add_argument("--streams", type=int, default=1, metavar="N",
                        help="concurrent inference streams (default 1: latency mode). N > 1: throughput mode, N plans "
                             "of threads / N threads each, called at once from N threads (OpenVINO's streams)")
    parser.add_argument("--peers", action="store_true",
                        help="also time onnxruntime (via convcore.onnx.export) and PyTorch (torchvision models), "
                             "when installed (latency mode)")
    parser.add_argument("--min-time", type=float, default=1.0, metavar="S",
                        help="seconds of timed runs per measurement (default 1.0; at least 3 runs)")
    parser.add_argument("--warmup", type=int, default=1, metavar="N",
                        help="untimed runs after the first call (default 1)")
    parser.add_argument("--eager", action="store_true", help="time eager model(x) instead of the compiled plan")
    parser.add_argument("--profile", action="store_true",
                        help=f"also print each compiled plan's ops with their kernels, GFLOP and time (each op's "
                             f"fastest of {PROFILE_REPEATS} runs)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON lines")
    parser.add_argument("--report", metavar="FILE",
                        help="also write a JSON report: the machine, the settings and every result")
    add_device_argument(parser)


def _measure(fn, x, warmup, min_time):
    """{'first_s': the first call, 'times': seconds of each timed run}: the first call (buffers planned, caches cold),
    `warmup` untimed calls, then at least 3 timed runs and at least `min_time` seconds of them."""
    t0 = time.perf_counter()
    fn(x)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn(x)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return {"first_s": first, "times": times}


def _streams(fns, x, warmup, min_time):
    """Throughput mode: each of `fns` (one per stream) called in a loop from its own thread at once, for at least
    `min_time` seconds and 3 calls each. {'first_s': the slowest first call, 'times': every call's latency,
    'wall_s': the timed span, 'calls': calls made in it}."""
    firsts, times, errors = [0.0] * len(fns), [], []
    ready = threading.Barrier(len(fns) + 1)
    lock = threading.Lock()
    span = {}

    def stream(i, fn):
        try:
            t0 = time.perf_counter()
            fn(x)
            firsts[i] = time.perf_counter() - t0
            for _ in range(warmup):
                fn(x)
        except BaseException as exc:  # reported after the others stop
            errors.append(exc)
        ready.wait()
        mine = []
        while not errors and (len(mine) < 3 or time.perf_counter() - span["start"] < min_time):
            t0 = time.perf_counter()
            fn(x)
            mine.append(time.perf_counter() - t0)
        with lock:
            times.extend(mine)
            span["end"] = max(span.get("end", 0.0), time.perf_counter())

    threads = [threading.Thread(target=stream, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    span["start"] = time.perf_counter()
    ready.wait()
    span["start"] = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {"first_s": max(firsts), "times": times, "wall_s": span["end"] - span["start"], "calls": len(times)}


def _stats(measured, batch, gflops):
    """The record's timing fields from a measurement: latencies per call in ms (p50 / p90 / p99, from every timed
    run), ms per image (p50 / batch), images per second (the streams' total in throughput mode)."""
    ms = np.asarray(measured["times"]) * 1000
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    if "wall_s" in measured:
        rate = measured["calls"] * batch / measured["wall_s"]
    else:
        rate = batch * 1000 / p50
    return {"first_call_ms": round(measured["first_s"] * 1000, 3), "runs": len(ms), "p50_ms": round(p50, 3),
            "p90_ms": round(p90, 3), "p99_ms": round(p99, 3), "ms_per_image": round(p50 / batch, 3),
            "images_per_s": round(rate, 2),
            "gflops_per_s": round(gflops * rate, 2) if gflops else None}


def _time_onnxruntime(path, shapes, threads, warmup, min_time, gpu=None):
    """A `_measure` per input shape of an onnxruntime session on the ONNX file (runs in a worker process), with the
    session's creation time as 'compile_s': the CPU provider, or the CUDA provider on GPU `gpu` (numpy in and out, so
    the copies are included)."""
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
    start = time.perf_counter()
    session = ort.InferenceSession(path, options, providers=providers)
    compile_s = time.perf_counter() - start
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    return [dict(_measure(lambda x: session.run(None, {name: x}), rng.standard_normal(shape, dtype=np.float32),
                          warmup, min_time), compile_s=compile_s) for shape in shapes]


def _time_torch(model_name, shapes, threads, warmup, min_time, gpu=None, precision="fp32"):
    """A `_measure` per input shape of torchvision's `model_name` (random weights; runs in a worker process), on
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
    """Measurements per shape of one peer engine, each in its own process; LookupError / ImportError when
    unavailable."""
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
    """[(engine, [measurement per shape])] for onnxruntime and PyTorch; an unavailable or failing peer is skipped with a
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


def _convcore(loaded, shape, args, threads):
    """(measurement, engine, the runner that was timed) of convcore on `shape`: one compiled plan (or the eager
    module), or `--streams` plans called at once."""
    batch = shape[0]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if args.streams > 1:
        from convcore.plan import compile as compile_plan

        per_stream = max(1, threads // args.streams)
        start = time.perf_counter()
        plans = [compile_plan(loaded.module, shape, num_threads=per_stream) for _ in range(args.streams)]
        compile_s = time.perf_counter() - start
        engine = f"convcore (compiled plan, {plans[0].isa}, {args.streams} streams x {per_stream} threads)"
        log(f"bench: {loaded.name} batch {batch} {engine} ...")
        return dict(_streams(plans, x, args.warmup, args.min_time), compile_s=compile_s), engine, plans[0]
    start = time.perf_counter()
    run_model, engine = runner(loaded, batch, args.eager, args.device, args.precision)
    compile_s = None if engine == "eager" else time.perf_counter() - start
    log(f"bench: {loaded.name} batch {batch} convcore ({engine}) ...")
    timed_call = run_model
    if args.gpu is not None:  # input and outputs stay on the GPU, as a GPU pipeline keeps them
        import convcore.cuda

        x = convcore.cuda.to_device(x, args.gpu)
        outs = run_model(x)
        plan = run_model
        timed_call = lambda v, plan=plan, outs=outs: plan.run(v, out=outs)  # noqa: E731
    measured = _measure(timed_call, x, args.warmup, args.min_time)
    return dict(measured, compile_s=compile_s), f"convcore ({engine})", run_model


def _report_file(path, args, threads, results):
    """The --report JSON: the machine (convcore's configuration), the settings and every result."""
    import convcore

    config = convcore.show_config(print_out=False)
    machine = {k: config[k] for k in ("version", "isa", "available_isas", "num_threads", "thread_pool", "compiler")}
    machine["cpu"] = config["cpu"].get("brand")
    machine["cpus_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.gpu is not None:
        machine["gpu"] = convcore.cuda.get_device_info(args.gpu)
    settings = {k: getattr(args, k) for k in ("batch", "streams", "min_time", "warmup", "eager", "device",
                                              "precision", "peers")}
    settings["threads"] = threads
    report = {"machine": machine, "settings": settings, "models": args.models or list(DEFAULT_MODELS),
              "results": results,
              "notes": "latencies are per call (a whole batch); ms_per_image = p50_ms / batch; images_per_s: "
                       "batch / p50 in latency mode, the streams' total in throughput mode; compile_s: building "
                       "the plan (onnxruntime: the session); first_call_ms: the first call (buffers planned, caches "
                       "cold), before the warm-up runs"}
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    except OSError as exc:
        raise CLIError(f"--report: cannot write {path}: {exc.strerror or exc}") from None


def run(args):
    batches = parse_int_list(args.batch, "--batch")
    if args.min_time < 0 or args.warmup < 0:
        raise UsageError("--min-time and --warmup: expected non-negative values")
    if args.streams < 1:
        raise UsageError(f"--streams: expected a positive integer (got {args.streams})")
    threads = set_threads(args.threads)
    args.gpu = check_device(args)
    if args.streams > 1 and (args.eager or args.gpu is not None):
        raise UsageError("--streams: throughput mode runs compiled CPU plans (not --eager or --device cuda)")
    if args.report:
        folder = os.path.dirname(os.path.abspath(args.report))
        if not os.path.isdir(folder):
            raise UsageError(f"--report: no such folder: {folder}")
    specs = args.models or list(DEFAULT_MODELS)
    from convcore import models

    loaded_models = [load_model(spec, need_weights=False) for spec in specs]
    results = []
    skipped = {}

    def report(model, batch, engine, measured, gflops):
        record = {"model": model, "batch": batch, "engine": engine, "device": args.device, "threads": threads,
                  "streams": args.streams if engine.startswith("convcore") else 1,
                  "compile_s": None if measured.get("compile_s") is None else round(measured["compile_s"], 3)}
        record.update(_stats(measured, batch, gflops))
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
                measured, engine, run_model = _convcore(loaded, shape, args, threads)
                report(loaded.name, shape[0], engine, measured, gflops)
                if args.profile and hasattr(run_model, "summary"):
                    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
                    run_model.summary(x, repeats=PROFILE_REPEATS)
            if args.peers and args.streams > 1:
                skipped.setdefault("peers", "measured in latency mode only (without --streams)")
            elif args.peers:
                for engine, measurements in _peers(spec, loaded, shapes, threads, args, folder, skipped):
                    for shape, measured in zip(shapes, measurements):
                        report(loaded.name, shape[0], engine, measured, gflops)
    if args.report:
        _report_file(args.report, args, threads, results)
    if not args.json:
        order = {name: i for i, name in reversed(list(enumerate(r["model"] for r in results)))}
        results.sort(key=lambda r: (order[r["model"]], r["batch"]))  # stable: engines keep their order
        rows = [(r["model"], r["batch"], r["engine"], "-" if r["compile_s"] is None else f"{r['compile_s']:.2f}",
                 f"{r['first_call_ms']:.2f}", f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}",
                 f"{r['ms_per_image']:.2f}", f"{r['images_per_s']:.1f}",
                 "-" if r["gflops_per_s"] is None else f"{r['gflops_per_s']:.1f}") for r in results]
        print(format_table(("model", "batch", "engine", "compile s", "first ms", "p50 ms", "p90 ms", "p99 ms",
                            "ms/image", "images/s", "GFLOP/s"), rows, "lrlrrrrrrrr"))
        where = f"GPU {args.gpu}, {args.precision}" if args.gpu is not None else f"{threads} threads"
        mode = f"throughput mode, {args.streams} streams" if args.streams > 1 else "latency mode"
        print(f"({where}, {mode}; zoo models with installed pretrained weights, else random ones; latencies per "
              f"call of a whole batch over >= 3 runs and >= {args.min_time:g} s; ms/image = p50 / batch)")
        for engine, reason in skipped.items():
            print(f"({engine} skipped: {reason})")
    return 0
