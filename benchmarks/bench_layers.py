"""Per-layer convolution timings of the zoo's real conv shapes: convcore's Plan (direct and Winograd) beside ONNX
Runtime, OpenVINO (fp32) and PyTorch, in one run.

Usage:
    python benchmarks/bench_layers.py [--models resnet50,mobilenet_v2] [--batch 1] [--threads 2] [--repeat 20]
                                      [--engines convcore,onnxruntime,openvino,torch] [--limit N]

The distinct convolution shapes (with their fused activation) are read from the traced models at 224 x 224. Each
engine runs all layers in its own process (spinning workers of one runtime would steal the CPUs of the next); each
layer is one ONNX Conv + Relu file that convcore, ONNX Runtime and OpenVINO load, while PyTorch calls F.conv2d.
Printed: median ms, GFLOP/s and % of this machine's measured fp32 peak (an FMA loop, same run), and the ratio
fastest peer / convcore (> 1: convcore is faster). Depthwise layers are memory-bound: judge them by GB/s against the
measured copy bandwidth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def layers_of(models, size):
    """Distinct (C, H, W, K, kh, kw, stride, pads, dilation, groups) of the models' convolutions."""
    import convcore
    import convcore.models

    seen = {}
    for name in models:
        graph = convcore.trace(convcore.models.get_model(name).eval(), (1, 3, size, size))
        for node in graph.nodes:
            if node.op not in ("conv2d", "depthwise_conv2d"):
                continue
            _, c, h, w = graph.shapes[node.inputs[0]]
            k, _, kh, kw = graph.shapes[node.inputs[1]]
            a = node.attrs
            groups = a.get("groups", c)
            key = (c, h, w, k, kh, kw, tuple(a["stride"]), tuple(a["padding"]), tuple(a["dilation"]), groups)
            seen.setdefault(key, f"{name}:{node.name}")
    return [(key, where) for key, where in seen.items()]


def flops(key):
    c, h, w, k, kh, kw, (sh, sw), (pt, pb, pl, pr), (dh, dw), g = key
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return 2.0 * oh * ow * k * (c // g) * kh * kw


def write_onnx(key, path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c, h, w, k, kh, kw, (sh, sw), (pt, pb, pl, pr), (dh, dw), g = key
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((k, c // g, kh, kw)) * 0.1).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[kh, kw], strides=[sh, sw],
                            pads=[pt, pl, pb, pr], dilations=[dh, dw], group=g)
    relu = helper.make_node("Relu", ["c"], ["y"])
    graph = helper.make_graph([conv, relu], "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                    ["N", c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def median_time(fn, repeat):
    t_end = time.perf_counter() + 0.1
    while time.perf_counter() < t_end:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def worker(engine, folder, count, batch, threads, repeat):
    results = []
    for i in range(count):
        path = os.path.join(folder, f"{i}.onnx")
        with open(os.path.join(folder, f"{i}.json")) as f:
            key = json.load(f)
        c, h, w = key[0], key[1], key[2]
        x = np.random.default_rng(1).standard_normal((batch, c, h, w)).astype(np.float32)
        row = {}
        try:
            if engine.startswith("convcore"):
                import convcore

                convcore.set_num_threads(threads)
                wino = engine == "convcore-winograd"
                if wino and not (key[4] == key[5] == 3 and key[6] == [1, 1] and key[9] == 1 and key[8] == [1, 1]):
                    results.append(None)
                    continue
                plan = convcore.compile(path, (batch, c, h, w), winograd=wino)
                row["s"] = median_time(lambda: plan(x), repeat)
            elif engine == "onnxruntime":
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
                sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
                row["s"] = median_time(lambda: sess.run(None, {"x": x}), repeat)
            elif engine == "openvino":
                import openvino as ov

                compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                                 "INFERENCE_NUM_THREADS": threads,
                                                                 "PERFORMANCE_HINT": "LATENCY"})
                req = compiled.create_infer_request()
                row["s"] = median_time(lambda: req.infer({0: x}), repeat)
            elif engine == "torch":
                import onnx
                import torch
                import torch.nn.functional as TF
                from onnx import numpy_helper

                torch.set_num_threads(threads)
                init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in
                        onnx.load(path).graph.initializer}
                _, _, _, _, _, _, stride, (pt, pb, pl, pr), dil, g = key
                xt = torch.from_numpy(x)
                if pt == pb and pl == pr:
                    fn = lambda: TF.relu(TF.conv2d(xt, init["w"], init["b"], stride, (pt, pl), dil, g))  # noqa: E731
                else:
                    fn = lambda: TF.relu(TF.conv2d(TF.pad(xt, (pl, pr, pt, pb)), init["w"], init["b"],  # noqa: E731
                                                   stride, 0, dil, g))
                with torch.inference_mode():
                    row["s"] = median_time(fn, repeat)
        except Exception as exc:  # an engine that cannot run a layer is reported as n/a
            row["error"] = f"{type(exc).__name__}: {exc}"[:100]
        results.append(row)
    print(json.dumps(results))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,mobilenet_v2,efficientnet_b0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--limit", type=int, default=0, help="only the first N layers")
    ap.add_argument("--engines", default="convcore,convcore-winograd,onnxruntime,openvino,torch")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.folder, args.count, args.batch, args.threads, args.repeat)

    from convcore import _core

    peak = _core.measure_fma_peak(args.threads, 0.5)
    bandwidth = _core.measure_bandwidth(args.threads)
    layers = layers_of(args.models.split(","), args.size)
    if args.limit:
        layers = layers[:args.limit]
    engines = args.engines.split(",")
    print(f"# {len(layers)} layers; batch {args.batch}; {args.threads} threads; measured fp32 peak {peak:.0f} GFLOP/s, "
          f"copy bandwidth {bandwidth:.1f} GB/s")
    with tempfile.TemporaryDirectory() as folder:
        for i, (key, _) in enumerate(layers):
            write_onnx(key, os.path.join(folder, f"{i}.onnx"))
            with open(os.path.join(folder, f"{i}.json"), "w") as f:
                json.dump(key, f)
        timings = {}
        for engine in engines:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", engine, "--folder", folder, "--count",
                   str(len(layers)), "--batch", str(args.batch), "--threads", str(args.threads), "--repeat",
                   str(args.repeat)]
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
            lines = [line for line in out.stdout.splitlines() if line.startswith("[")]
            timings[engine] = json.loads(lines[-1]) if lines else [{"error": out.stderr[-100:]}] * len(layers)
    header = ["layer (C HxW -> K, kxk/s, g)", "first seen in"] + [f"{e} ms" for e in engines] + [
        "best convcore GF/s", "% peak", "vs best peer"]
    print(" | ".join(header))
    for i, (key, where) in enumerate(layers):
        c, h, w, k, kh, kw, stride, pads, dil, g = key
        desc = f"{c} {h}x{w} -> {k}, {kh}x{kw}/{stride[0]}" + (f", g{g}" if g > 1 else "") + (
            f", d{dil[0]}" if dil[0] > 1 else "")
        cells, ms = [desc, where], {}
        for engine in engines:
            r = timings[engine][i]
            if r is None or "s" not in r:
                cells.append("-" if r is None else "n/a")
            else:
                ms[engine] = r["s"] * 1e3
                cells.append(f"{ms[engine]:.3f}")
        ours = [v for e, v in ms.items() if e.startswith("convcore")]
        peers = [v for e, v in ms.items() if not e.startswith("convcore")]
        if ours:
            gf = flops(key) * args.batch / (min(ours) / 1e3) / 1e9
            cells += [f"{gf:.0f}", f"{100 * gf / peak:.0f}%", f"{min(peers) / min(ours):.2f}x" if peers else "-"]
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
