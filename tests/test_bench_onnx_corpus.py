"""benchmarks/bench_onnx.py's corpus table is well formed (no network: nothing is fetched), and docs/onnx.md's
status table names every model of it."""

import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_onnx", ROOT / "benchmarks" / "bench_onnx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corpus_entries(bench):
    corpus = bench.CORPUS
    assert len(corpus) >= 10
    assert len({e.exporter for e in corpus}) >= 3
    for e in corpus:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", e.name), e.name
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", e.package), e.package
        assert re.fullmatch(r"\d+(\.\d+)*(\.?(post|a|b|rc)\d+)?", e.version), f"{e.name}: unpinned {e.version!r}"
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256), e.name
        assert e.member.endswith(".onnx") and not e.member.startswith("/") and ".." not in e.member.split("/")
        assert e.exporter in ("paddle2onnx", "torch", "tf2onnx", "keras2onnx"), e.exporter
        assert isinstance(e.opset, int) and 7 <= e.opset <= 28
        assert e.input and e.what
        assert re.fullmatch(r"'.*' '.*' IR \d+", e.producer), e.producer  # producer_name, producer_version, IR
        assert bench.exporter_label(e).startswith(e.exporter)
        assert e.shape and all(isinstance(d, int) and d > 0 for d in e.shape)
        assert e.batch in ("dynamic", "fixed 1")
    assert len({e.sha256 for e in corpus}) == len(corpus)
    assert len({(e.package, e.version, e.member) for e in corpus}) == len(corpus)


def test_torchvision_models_and_names(bench):
    assert {m.name for m in bench.TORCHVISION} >= {
        "shufflenet_v2_x1_0", "convnext_tiny", "regnet_y_400mf", "mobilenet_v3_large", "squeezenet1_1",
        "efficientnet_v2_s", "inception_v3", "vit_b_16", "swin_t"}
    for m in bench.TORCHVISION:
        assert len(m.shape) == 3 and all(d > 0 for d in m.shape)
    names = bench.all_names()
    assert len(names) == len(set(names))


def test_list_prints_every_model(bench, capsys):
    bench.main(["--list"])
    out = capsys.readouterr().out
    for name in bench.all_names():
        assert re.search(rf"^{name} ", out, re.M), name
    for e in bench.CORPUS:
        assert e.sha256 in out and f"{e.package}=={e.version}" in out


def test_unknown_model_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--check", "--models", "no_such_model"])
    assert "no_such_model" in capsys.readouterr().err


def test_docs_status_table_names_every_model(bench):
    doc = (ROOT / "docs" / "onnx.md").read_text()
    section = doc.split("## Real ONNX files", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| ([a-z][a-z0-9_]*) \|.*\n(?!\|-)", section + "\n", re.M))  # not the headers
    assert rows == set(bench.all_names())
