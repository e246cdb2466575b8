"""GPU plans against PyTorch (cuDNN) and onnxruntime's CUDA provider, in one run.

resnet50, mobilenet_v2 and efficientnet_b0 at 224 x 224, batch 1 and 32, fp32 and TF32 (and bf16 with --bf16), with
random weights (the same weights in every engine when PyTorch takes the zoo model's state_dict). Each engine keeps
its input and output on the GPU (convcore: DeviceArrays; PyTorch: CUDA tensors; onnxruntime: I/O binding) and is
timed as the median of calls that each end with the GPU idle (every convcore call synchronizes; PyTorch and
onnxruntime are synchronized after each call), after warm-up calls (cuDNN's autotuner runs in them).

"fp32" means fp32 arithmetic everywhere: PyTorch with TF32 off (torch.backends.cudnn.allow_tf32 = False; PyTorch's
own default lets cuDNN use TF32), onnxruntime with use_tf32 = 0. "tf32" turns TF32 on in all three.

Accuracy: each convcore GPU plan's output against the CPU Plan's (fp32) on the same input, max|err| / max|y|.

    python benchmarks/bench_cuda.py                       # the full table (a few minutes on an H100 / H200)
    python benchmarks/bench_cuda.py --models resnet50 --batch 32 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import convcore
import convcore.cuda
from convcore import models

MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0")


def _randomize(model, seed=0):
    """Random weights and batch-norm statistics (fresh statistics are identity maps), in place."""
    rng = np.random.default_rng(seed)
    for key, value in model.state_dict().items():
        if value.ndim >= 2:
            value[...] = rng.standard_normal(value.shape) * np.sqrt(1.6 / int(np.prod(value.shape[1:])))
        elif key.endswith("running_mean"):
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
        elif key.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif key.endswith("weight"):
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        elif key.endswith("bias"):
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    return model


def _median_seconds(fn, warmup, min_time, min_runs=10):
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rel_err(got, want):
    return float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())


def bench_convcore(model, x, precision, args, reference):
    plan = convcore.compile(model, x.shape, device=f"cuda:{args.device}", precision=precision)
    dx = convcore.cuda.to_device(x, args.device)
    out = plan(dx)
    err = _rel_err(out.numpy(), reference)
    seconds = _median_seconds(lambda: plan.run(dx, out=out), args.warmup, args.min_time)
    return seconds, err


def bench_torch(name, model, x, precision, args, reference):
    import torch
    import torchvision

    if not torch.cuda.is_available():
        raise LookupError("this PyTorch has no CUDA")
    device = f"cuda:{args.device}"
    net = torchvision.models.get_model(name, weights=None).eval()
    same_weights = True
    try:
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.state_dict().items()})
    except Exception:  # another layout of the same architecture: time it with its own random weights
        same_weights = False
    net = net.to(device)
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    tx = torch.from_numpy(x).to(device)
    if args.channels_last:
        tx = tx.to(memory_format=torch.channels_last)
    import contextlib

    autocast = torch.autocast("cuda", torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        y = net(tx).float().cpu().numpy()

        def call():
            net(tx)
            torch.cuda.synchronize()

        seconds = _median_seconds(call, max(args.warmup, 5), args.min_time)
    return seconds, (_rel_err(y, reference) if same_weights else None)


def bench_onnxruntime(model, x, precision, args, reference, folder):
    import onnxruntime as ort

    if precision == "bf16":
        raise LookupError("no bf16 switch for an fp32 ONNX model")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise LookupError("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)")
    from convcore.onnx import export

    path = os.path.join(folder, f"model-{x.shape[0]}.onnx")
    export(model, path, input_shape=x.shape)
    provider = ("CUDAExecutionProvider", {"device_id": args.device, "use_tf32": int(precision == "tf32"),
                                          "cudnn_conv_algo_search": "EXHAUSTIVE"})
    session = ort.InferenceSession(path, providers=[provider])
    binding = session.io_binding()
    xin = ort.OrtValue.ortvalue_from_numpy(x, "cuda", args.device)
    binding.bind_ortvalue_input(session.get_inputs()[0].name, xin)
    binding.bind_output(session.get_outputs()[0].name, "cuda", args.device)
    session.run_with_iobinding(binding)
    y = binding.copy_outputs_to_cpu()[0]

    def call():
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return _median_seconds(call, max(args.warmup, 5), args.min_time), _rel_err(y, reference)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", default="1,32")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="also bf16 (convcore: tensor cores; PyTorch: autocast)")
    parser.add_argument("--no-peers", action="store_true", help="convcore only")
    parser.add_argument("--channels-last", action="store_true", help="PyTorch in channels-last memory format")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per row (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if not convcore.cuda.is_available():
        sys.exit(f"bench_cuda: {convcore.cuda.unavailable_reason()}")
    info = convcore.cuda.get_device_info(args.device)
    print(f"GPU {args.device}: {info['name']}, compute capability {info['compute_capability']}, "
          f"{info['multiprocessors']} SMs; convcore {convcore.__version__}", flush=True)
    precisions = ["fp32", "tf32"] + (["bf16"] if args.bf16 else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cuda-") as folder:
        for name in args.models.split(","):
            model = _randomize(models.get_model(name)).eval()
            gflop = float(models.summary(model, (3, args.size, args.size))["gflops"])
            for batch in [int(b) for b in args.batch.split(",")]:
                x = np.random.default_rng(batch).standard_normal((batch, 3, args.size, args.size)).astype(np.float32)
                reference = convcore.compile(model, x.shape)(x)  # the CPU Plan, fp32
                for precision in precisions:
                    engines = [("convcore", lambda: bench_convcore(model, x, precision, args, reference))]
                    if not args.no_peers:
                        engines += [("pytorch+cudnn", lambda: bench_torch(name, model, x, precision, args, reference)),
                                    ("onnxruntime-cuda",
                                     lambda: bench_onnxruntime(model, x, precision, args, reference, folder))]
                    for engine, run in engines:
                        try:
                            seconds, err = run()
                        except Exception as exc:  # a missing or failing peer is a note, not the end of the run
                            print(f"  {name} b{batch} {precision} {engine}: skipped ({type(exc).__name__}: {exc})",
                                  flush=True)
                            continue
                        row = {"model": name, "batch": batch, "precision": precision, "engine": engine,
                               "ms": seconds * 1e3, "ms_per_image": seconds * 1e3 / batch,
                               "images_per_s": batch / seconds, "tflops": gflop * batch / seconds / 1e3,
                               "rel_err_vs_cpu_plan": err}
                        rows.append(row)
                        print(f"  {name} b{batch} {precision} {engine}: {row['ms']:.3f} ms"
                              + (f", err {err:.1e}" if err is not None else ""), flush=True)
    print()
    header = ("model", "batch", "prec", "engine", "ms/batch", "img/s", "TFLOP/s", "vs torch", "max|err|/max|y|")
    torch_ms = {(r["model"], r["batch"], r["precision"]): r["ms"] for r in rows if r["engine"] == "pytorch+cudnn"}
    body = []
    for r in rows:
        ref = torch_ms.get((r["model"], r["batch"], r["precision"]))
        body.append((r["model"], str(r["batch"]), r["precision"], r["engine"], f"{r['ms']:.3f}",
                     f"{r['images_per_s']:.0f}", f"{r['tflops']:.1f}", f"{r['ms'] / ref:.2f}x" if ref else "-",
                     f"{r['rel_err_vs_cpu_plan']:.1e}" if r["rel_err_vs_cpu_plan"] is not None else "-"))
    widths = [max(len(str(v)) for v in col) for col in zip(header, *body)]
    for line in [header] + body:
        print("  ".join(str(v).rjust(w) if i in (1, 4, 5, 6, 7) else str(v).ljust(w)
                        for i, (v, w) in enumerate(zip(line, widths))))
    print("(vs torch: convcore's / onnxruntime's time over PyTorch's at the same precision; lower is faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
