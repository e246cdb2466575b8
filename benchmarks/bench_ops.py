"""Per-layer convolution timings at batch 1: convcore beside PyTorch and ONNX Runtime (when installed), same run.

Usage: python benchmarks/bench_ops.py [--threads N] [--isa avx512|avx2|scalar] [--repeat R] [--peak GFLOPS]

Prints median ms and GFLOP/s per layer and the ratio peer_ms / convcore_ms (> 1: convcore is faster). The layers are
real shapes from the zoo (ResNet, MobileNetV2, EfficientNet, ResNeXt, DeepLab). Each engine runs in its own process,
one after the other: idle worker threads of one runtime (they spin after work) would otherwise steal the CPUs from
the next. Numbers on a shared 2-core VM are noisy: compare columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import convcore
import convcore.functional as F

# name, (C_in, H, W), (C_out, k, stride, pad, dilation, groups)
LAYERS = [
    ("3x3 64->64 @56", (64, 56, 56), (64, 3, 1, 1, 1, 1)),
    ("3x3 256->256 @14", (256, 14, 14), (256, 3, 1, 1, 1, 1)),
    ("1x1 256->64 @56", (256, 56, 56), (64, 1, 1, 0, 1, 1)),
    ("3x3 s2 128->128 @56", (128, 56, 56), (128, 3, 2, 1, 1, 1)),
    ("3x3 d2 64->64 @56", (64, 56, 56), (64, 3, 1, 2, 2, 1)),
    ("dw 3x3 144 @56", (144, 56, 56), (144, 3, 1, 1, 1, 144)),
    ("dw 5x5 s2 240 @28", (240, 28, 28), (240, 5, 2, 2, 1, 240)),
    ("7x7 s2 3->64 @224", (3, 224, 224), (64, 7, 2, 3, 1, 1)),
    ("3x3 g32 256->256 @28", (256, 28, 28), (256, 3, 1, 1, 1, 32)),
]


def timeit(fn, repeat: int) -> float:
    """Median ms of `repeat` calls, after warming up for at least 0.2 s (first touch of buffers, thread start,
    clock)."""
    t_end = time.perf_counter() + 0.2
    while time.perf_counter() < t_end:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def flops(cin, h, w, cout, k, s, p, d, g):
    oh = (h + 2 * p - d * (k - 1) - 1) // s + 1
    ow = (w + 2 * p - d * (k - 1) - 1) // s + 1
    return 2.0 * cout * oh * ow * (cin // g) * k * k


def torch_runner(x, w, b, s, p, d, g, threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

    def run():
        with torch.inference_mode():
            torch.nn.functional.conv2d(xt, wt, bt, s, p, d, g)

    return run


def ort_runner(x, w, b, s, p, d, g, threads):
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[s, s], pads=[p, p, p, p], dilations=[d, d],
                            group=g, kernel_shape=list(w.shape[2:]))
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"x": x})


def make_layer(cin, h, w, cout, k, g, rng):
    x = rng.standard_normal((1, cin, h, w), dtype=np.float32)
    wt = rng.standard_normal((cout, cin // g, k, k), dtype=np.float32) * 0.1
    b = rng.standard_normal(cout, dtype=np.float32)
    return x, wt, b


def run_engine(engine: str, threads: int, repeat: int) -> list[float]:
    """Median ms per layer for one engine (nan where it is not installed)."""
    rng = np.random.default_rng(0)
    times = []
    for _, (cin, h, w), (cout, k, s, p, d, g) in LAYERS:
        x, wt, b = make_layer(cin, h, w, cout, k, g, rng)
        if engine == "convcore":
            out = F.conv2d(x, wt, b, s, p, d, g)
            run = lambda: F.conv2d(x, wt, b, s, p, d, g, out=out)  # noqa: E731
        else:
            run = (torch_runner if engine == "torch" else ort_runner)(x, wt, b, s, p, d, g, threads)
        times.append(timeit(run, repeat) if run else float("nan"))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=convcore.get_num_threads())
    ap.add_argument("--isa", default=None)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--peak", type=float, default=None,
                    help="machine fp32 peak GFLOP/s for the %%peak column (default: threads x 64 FLOP/cycle x 4.2 GHz)")
    ap.add_argument("--engine", choices=["convcore", "torch", "ort"], help=argparse.SUPPRESS)  # one child process
    args = ap.parse_args()
    convcore.set_num_threads(args.threads)
    if args.isa:
        convcore.set_isa(args.isa)
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.threads, args.repeat)))
        return
    peak = args.peak or args.threads * 64 * 4.2
    cfg = convcore.show_config(print_out=False)
    print(f"convcore {cfg['version']} isa={cfg['isa']} kernel={cfg['conv_kernel']} threads={args.threads} "
          f"peak~{peak:.0f} GFLOP/s")
    results = {}
    for engine in ("convcore", "torch", "ort"):
        cmd = [sys.executable, __file__, "--engine", engine, "--threads", str(args.threads), "--repeat",
               str(args.repeat)] + (["--isa", args.isa] if args.isa else [])
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            sys.exit(f"{engine} benchmark failed:\n{done.stderr}")
        results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    header = (f"{'layer':24s} {'convcore ms':>11s} {'GFLOP/s':>8s} {'%peak':>6s} {'torch ms':>9s} {'ort ms':>8s} "
              f"{'torch/cc':>8s} {'ort/cc':>7s}")
    print(header)
    print("-" * len(header))
    for i, (name, (cin, h, w), (cout, k, s, p, d, g)) in enumerate(LAYERS):
        ms, tms, oms = results["convcore"][i], results["torch"][i], results["ort"][i]
        gf = flops(cin, h, w, cout, k, s, p, d, g) / ms / 1e6
        print(f"{name:24s} {ms:11.3f} {gf:8.1f} {100 * gf / peak:5.1f}% {tms:9.3f} {oms:8.3f} "
              f"{tms / ms:8.2f} {oms / ms:7.2f}")


if __name__ == "__main__":
    main()
