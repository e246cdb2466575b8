"""Whole-model latency: convcore's compiled Plan beside ONNX Runtime, OpenVINO (fp32) and PyTorch, in one run.

Usage:
    python benchmarks/bench_models.py [--models resnet50,mobilenet_v2] [--batch 1,8] [--threads 2] [--repeat 10]
                                      [--engines convcore,onnxruntime,openvino,torch] [--eager] [--json FILE]

Every engine runs in its own process, one after another (idle spinning workers of one runtime would steal the CPUs
of the next). convcore, ONNX Runtime and OpenVINO run the same ONNX file, exported by convcore from its zoo model
(random weights, fixed seed); PyTorch runs torchvision's (or timm's) model of the same architecture. Each reports
the median of >= `repeat` timed calls after 0.5 s of warm-up, the compile / load time, the first call's latency and
the process's peak memory growth. The machine's fp32 peak (an FMA loop) and copy bandwidth are measured in the
same run, so "% peak" never rests on an assumed clock. Timings on a shared VM are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

MODELS = ["resnet18", "resnet50", "vgg16", "googlenet", "densenet121", "mobilenet_v2", "mnasnet1_0",
          "efficientnet_b0", "efficientnet_lite0", "se_resnet50"]
ENGINES = ["convcore", "onnxruntime", "openvino", "torch"]
# PyTorch counterparts of zoo models torchvision lacks (same architecture; timm's Lite0 pads 'same' at run time).
TIMM = {"se_resnet50": "seresnet50", "efficientnet_lite0": "tf_efficientnet_lite0"}


def rss_mb():
    """Peak resident memory of this process so far (VmHWM), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_calls(fn, repeat, warmup=0.5):
    t_end = time.perf_counter() + warmup
    while time.perf_counter() < t_end:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------------- workers
def load_engine(engine, args):
    """(callable taking x, description); the time this takes is the engine's compile time."""
    threads = args.threads
    if engine == "convcore":
        import convcore
        import convcore.onnx

        convcore.set_num_threads(threads)
        if args.eager:
            module = convcore.onnx.load(args.onnx)
            return module, "eager"
        plan = convcore.compile(args.onnx, winograd=args.winograd if args.winograd != "auto" else "auto")
        return plan, f"plan {plan.isa}"
    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return (lambda x: sess.run(None, {name: x})[0]), f"onnxruntime {ort.__version__}"
    if engine == "openvino":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(args.onnx, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         "INFERENCE_NUM_THREADS": threads,
                                                         "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return (lambda x: request.infer({0: x})[compiled.output(0)]), f"openvino {ov.__version__} f32"
    if engine == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        if args.model in TIMM:
            import timm

            model = timm.create_model(TIMM[args.model]).eval()
        else:
            import torchvision

            kwargs = {"aux_logits": False, "init_weights": False} if args.model == "googlenet" else {}
            model = torchvision.models.get_model(args.model, **kwargs).eval()

        def run(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        return run, f"torch {torch.__version__}"
    raise ValueError(engine)


def worker(args):
    x = np.random.default_rng(1).standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    base = rss_mb()
    t0 = time.perf_counter()
    fn, desc = load_engine(args.worker, args)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn(x)
    first = time.perf_counter() - t0
    median = time_calls(lambda: fn(x), args.repeat)
    print(json.dumps({"engine": args.worker, "desc": desc, "compile_s": compile_s, "first_s": first,
                      "median_s": median, "peak_mb": rss_mb() - base}))


# ------------------------------------------------------------------------------------------------------ driver
def export_model(name, folder, size):
    import convcore
    import convcore.onnx
    from convcore import models

    np.random.seed(0)
    model = models.get_model(name).eval()
    path = os.path.join(folder, f"{name}.onnx")
    convcore.onnx.export(model, path, input_shape=(1, 3, size, size))
    # Direct-convolution FLOPs (a Winograd plan performs fewer multiplications for the same work).
    flops = sum(op[3] for op in convcore.compile(model, (1, 3, size, size), winograd=False).ops())
    return path, flops


def run_worker(engine, model, path, batch, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--model", model, "--onnx", path,
           "--batch", str(batch), "--threads", str(args.threads), "--repeat", str(args.repeat), "--size",
           str(args.size), "--winograd", args.winograd] + (["--eager"] if args.eager else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"engine": engine, "error": tail[:120]}
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--eager", action="store_true", help="time convcore's eager model(x) instead of its Plan")
    ap.add_argument("--winograd", default="auto", choices=["auto", "True", "False"])
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.winograd != "auto":
        args.winograd = args.winograd
    if args.worker:
        args.batch = int(args.batch)
        if args.winograd in ("True", "False"):
            args.winograd = args.winograd == "True"
        return worker(args)

    import convcore
    from convcore import _core

    peak = _core.measure_fma_peak(args.threads, 0.5)
    peak1 = _core.measure_fma_peak(1, 0.3)
    bandwidth = _core.measure_bandwidth(args.threads)
    cpu = convcore.show_config(print_out=False)["cpu"]["brand"]
    print(f"# {cpu}; {args.threads} threads; measured fp32 peak {peak:.0f} GFLOP/s ({peak1:.0f} on 1 thread), "
          f"copy bandwidth {bandwidth:.1f} GB/s; isa {_core.get_isa()}")
    engines = args.engines.split(",")
    header = ["model", "batch"] + [f"{e} ms/img" for e in engines] + ["vs best peer", "GFLOP/s", "% peak",
                                                                        "compile s", "first/median"] + [
        f"{e} MB" for e in engines]
    print(" | ".join(header))
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            path, flops = export_model(name, folder, args.size)
            for batch in [int(b) for b in args.batch.split(",")]:
                row = {"model": name, "batch": batch, "gflop": flops / 1e9}
                for engine in engines:
                    row[engine] = run_worker(engine, name, path, batch, args)
                results.append(row)
                print(format_row(row, engines, peak), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak, "bandwidth_gbs": bandwidth, "cpu": cpu, "rows": results}, f, indent=1)


def format_row(row, engines, peak):
    cells = [row["model"], str(row["batch"])]
    per_image = {}
    for engine in engines:
        r = row[engine]
        if "error" in r:
            cells.append("n/a")
        else:
            per_image[engine] = r["median_s"] / row["batch"] * 1e3
            cells.append(f"{per_image[engine]:.2f}")
    ours = row.get("convcore", {})
    peers = [v for k, v in per_image.items() if k != "convcore"]
    if "convcore" in per_image and peers:
        cells.append(f"{min(peers) / per_image['convcore']:.2f}x")
    else:
        cells.append("-")
    if "convcore" in per_image:
        gflops = row["gflop"] / (per_image["convcore"] / 1e3)
        cells += [f"{gflops:.0f}", f"{100 * gflops / peak:.0f}%", f"{ours['compile_s']:.2f}",
                  f"{ours['first_s'] / ours['median_s']:.2f}"]
    else:
        cells += ["-"] * 4
    # Peak resident memory each engine's process gained while loading and running the model.
    cells += [f"{row[e]['peak_mb']:.0f}" if "peak_mb" in row[e] else "-" for e in engines]
    return " | ".join(cells)


if __name__ == "__main__":
    main()
