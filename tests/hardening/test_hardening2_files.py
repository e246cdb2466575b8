"""Issue 22 ("Hardening, round 2"), items 11, 12, 16 and 17: checkpoints, the commands and Plan.run's out arrays.
Cases that used to blow up run in a child process that reports its own peak memory."""

import json
import struct

import numpy as np
import pytest

from convcore.io import load_checkpoint

from .helpers import run_child


def _load_in_child(path):
    code, out, err = run_child(f"""
        from convcore.io import load_checkpoint
        limit_address_space(1024)
        mark()
        try:
            state = load_checkpoint({str(path)!r})
            report(outcome="loaded", count=len(state))
        except ValueError as exc:
            report(outcome="ValueError", message=str(exc))
        report(peak_mb=peak_mb())
    """)
    assert code == 0, err[-2000:]
    return out


# ---- item 11: checkpoint entries sharing bytes cannot amplify ---------------------------------------------------

def _safetensors(path, entries, data):
    header = json.dumps(entries).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def test_item11_overlapping_safetensors_entries_are_refused(tmp_path):
    """300 entries of one 8 MiB file all pointing at the same bytes: load_checkpoint allocated 2.4 GB."""
    size = 8 * 2**20
    entries = {f"t{i}": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]} for i in range(300)}
    out = _load_in_child(_safetensors(tmp_path / "overlap.safetensors", entries, bytes(size)))
    assert out["outcome"] == "ValueError" and "overlap those of tensor" in out["message"], out
    assert out["peak_mb"] < 100, out


def test_item11_partly_overlapping_and_tiled_safetensors(tmp_path):
    data = np.arange(8, dtype=np.float32).tobytes()
    partly = {"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
              "c": {"dtype": "F32", "shape": [1], "data_offsets": [28, 32]}}
    with pytest.raises(ValueError, match=r"tensor '(b|c)': data_offsets .* overlap those of tensor 'a'"):
        load_checkpoint(_safetensors(tmp_path / "partly.safetensors", partly, data))
    tiled = {"__metadata__": {"format": "pt"}, "b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]},
             "empty": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},
             "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    state = load_checkpoint(_safetensors(tmp_path / "tiled.safetensors", tiled, data))
    assert list(state) == ["b", "empty", "a"]
    np.testing.assert_array_equal(state["b"], np.arange(2, 8, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(state["a"], [0, 1])


@pytest.mark.parametrize("legacy", [False, True])
def test_item11_pth_entries_sharing_one_storage_are_bounded(tmp_path, legacy):
    """A .pth whose 400 entries share one 8 MiB storage: each was copied, 3.2 GB."""
    torch = pytest.importorskip("torch")
    base = torch.zeros(2 * 2**20)
    path = tmp_path / "shared.pth"
    torch.save({f"t{i}": base for i in range(400)}, path, _use_new_zipfile_serialization=not legacy)
    out = _load_in_child(path)
    assert out["outcome"] == "ValueError" and "more than 4x the 8388608 bytes of storage" in out["message"], out
    assert out["peak_mb"] < 150, out
    # tied weights (two names, one storage) and a bfloat16 storage viewed twice still load
    tied = {"embed.weight": torch.randn(64, 32), "head.bias": torch.randn(64)}
    tied["head.weight"] = tied["embed.weight"]
    tied["half"] = torch.randn(2**16).bfloat16()
    tied["half_view"] = tied["half"][1:]
    torch.save(tied, path, _use_new_zipfile_serialization=not legacy)
    state = load_checkpoint(path)
    np.testing.assert_array_equal(state["head.weight"], tied["embed.weight"].numpy())
    np.testing.assert_array_equal(state["half_view"], tied["half"][1:].float().numpy())


# ---- item 16: Plan.run refuses out arrays that overlap each other -----------------------------------------------

def test_item16_overlapping_out_arrays_are_refused():
    """Two views of one buffer were accepted as out=, and one output silently overwrote part of the other."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    import convcore.onnx

    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 4])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "ab"])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    plan = convcore.compile(convcore.onnx.load(model.SerializeToString()))
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4)).astype(np.float32)
    buf = np.zeros(2 * 24 + 12, np.float32)
    overlapping = [buf[:48].reshape(2, 2, 3, 4), buf[12:].reshape(2, 2, 3, 4)]
    same = np.zeros((2, 2, 3, 4), np.float32)
    for out in (overlapping, [same, same]):
        with pytest.raises(ValueError, match=r"out\[1\]: must not overlap out\[0\]"):
            plan.run(x, out=out)
    apart = [buf[:48].reshape(2, 2, 3, 4), np.zeros((2, 2, 3, 4), np.float32)]
    a, b = plan.run(x, out=apart)
    np.testing.assert_array_equal(a, np.maximum(x, 0))
    np.testing.assert_allclose(b, 1 / (1 + np.exp(-x)), rtol=1e-6)


# ---- item 12: visualize --size is bounded ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    from convcore import models

    path = tmp_path_factory.mktemp("weights") / "resnet18-random.npz"
    np.savez(path, **models.get_model("resnet18").state_dict())
    return path


def test_item12_visualize_size_out_of_range_is_a_usage_error(resnet18_weights, tmp_path):
    """--size 1 failed in the jitter sampler (IndexError), feature --size 100000 asked for 37 GiB, class --size 50000
    for 14 GiB: now a one-line usage error (exit 2) from the CLI and a ValueError from the API, before any work."""
    code, out, err = run_child(f"""
        import contextlib, io
        from convcore import models, visualize
        from convcore.cli import main
        common = ["--model", "resnet18", "--weights", {str(resnet18_weights)!r}, "--steps", "1", "--no-progress",
                  "--out", {str(tmp_path)!r}]
        limit_address_space(2048)
        mark()
        for name, argv in [("feature_huge", ["feature", "layer3:1", "--size", "100000"]),
                           ("class_huge", ["class", "5", "--size", "50000"]),
                           ("class_one", ["class", "5", "--size", "1"]),
                           ("feature_one", ["feature", "layer3:1", "--size", "1"])]:
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr):
                status = main(["visualize", *argv, *common])
            report(**{{name: [status, stderr.getvalue()]}})
        net = visualize.resolve(models.get_model("resnet18"))
        for name, call in [("api_feature", lambda: visualize.feature(net, ["layer3:1"], steps=1, size=100000)),
                           ("api_class", lambda: visualize.class_model(net, [5], steps=1, size=50000)),
                           ("api_one", lambda: visualize.feature(net, ["layer3:1"], steps=1, size=1))]:
            try:
                call()
                report(**{{name: "ran"}})
            except ValueError as exc:
                report(**{{name: str(exc)}})
        report(smallest=list(visualize.feature(net, ["layer3:1"], steps=1, size=2, progress=False).values())[0].shape)
        report(peak_mb=peak_mb())
    """, timeout=300)
    assert code == 0, err[-3000:]
    for name, size in [("feature_huge", 100000), ("class_huge", 50000), ("class_one", 1), ("feature_one", 1)]:
        status, message = out[name]
        assert status == 2 and message.strip() == f"convcore: error: --size: expected an image side in [2, 1024] " \
                                                  f"pixels (got {size})", (name, out[name])
    for name, size in [("api_feature", 100000), ("api_class", 50000), ("api_one", 1)]:
        assert out[name] == f"size: expected an image side in [2, 1024] pixels (got {size})", out[name]
    assert out["smallest"] == [2, 2, 3] and out["peak_mb"] < 500, out


# ---- item 17: the smaller ones ---------------------------------------------------------------------------------

def test_item17_visualize_saliency_of_a_layer_without_maps_names_the_valid_layers(resnet18_weights, tmp_path, capsys):
    from convcore.cli import main

    common = ["--model", "resnet18", "--weights", str(resnet18_weights), "--no-progress", "--out", str(tmp_path)]
    assert main(["visualize", "saliency", "--layer", "fc", *common]) == 2
    err = capsys.readouterr().err
    assert "axis 1 is out of bounds" not in err and err.count("\n") == 1, err
    assert "layer: expected a layer with spatial maps (N, C, H, W) for Grad-CAM (got 'fc', whose output has shape " \
           "(3, 1000)); layers with maps: conv1, " in err and "layer4, avgpool" in err, err


@pytest.mark.parametrize("objective", ["", ":3", " "])
def test_item17_visualize_feature_without_a_layer_is_a_usage_error(resnet18_weights, tmp_path, capsys, objective):
    from convcore.cli import main

    common = ["--model", "resnet18", "--weights", str(resnet18_weights), "--no-progress", "--out", str(tmp_path)]
    assert main(["visualize", "feature", objective, "--steps", "1", *common]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convcore: error: ") and "TypeError" not in err and err.count("\n") == 1, err


def _tiny_onnx(tmp_path):
    import convcore.nn as nn
    import convcore.onnx

    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    path = tmp_path / "tiny.onnx"
    convcore.onnx.export(net, str(path), input_shape=(1, 3, 224, 224))
    return path


@pytest.mark.parametrize("shape", [(2**40,), (1, 3, 2**20, 2**20), (4, 3, 224, 224)])
def test_item17_run_refuses_a_npy_header_larger_than_its_file(tmp_path, shape):
    """A .npy header declaring 4 TiB made `convcore run` print a MemoryError; now a ValueError naming the file
    (exit 1, as the command's other bad input files), before anything of that size is allocated."""
    pytest.importorskip("onnx")
    model = _tiny_onnx(tmp_path)
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(bytes(64))
    code, out, err = run_child(f"""
        from convcore.cli import main
        limit_address_space(1024)
        mark()
        report(status=main(["run", {str(model)!r}, "--input", {str(path)!r}]), peak_mb=peak_mb())
    """)
    assert code == 0, err[-3000:]
    assert out["status"] == 1 and out["peak_mb"] < 100, (out, err[-2000:])
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"convcore: error: input {path}: its header declares shape {shape}"), line
    assert "MemoryError" not in err


def test_item17_classify_names_a_model_file_that_is_not_onnx(tmp_path, capsys):
    pytest.importorskip("onnx")
    from convcore import data
    from convcore.cli import main

    photo = data.sample_images()[0]
    for content in (b"\xff" * 300, b"not an onnx model at all\n"):
        path = tmp_path / "garbage.onnx"
        path.write_bytes(content)
        assert main(["classify", photo, "--model", str(path), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"convcore: error: {path}: not a valid ONNX model"), err


def test_item17_limits_doc_states_the_folded_constant_bound_of_the_code():
    from convcore.onnx.importer import folding

    from .helpers import ROOT

    limits = (ROOT / "docs" / "limits.md").read_text()
    onnx_doc = (ROOT / "docs" / "onnx.md").read_text()
    assert folding.MAX_FOLDED_ELEMENTS == 2**27 and folding.MAX_FOLDED_TOTAL == 2**28
    assert "2^24 elements (`MAX_FOLDED_ELEMENTS`)" not in limits
    assert "2^27 elements each, 2^28 in all (`MAX_FOLDED_ELEMENTS`, `MAX_FOLDED_TOTAL`" in limits
    assert "2^27 elements each, 2^28 in all" in onnx_doc


# ---- item 15: a fork()ed child computes after the parent ran multi-threaded kernels -----------------------------

def test_item15_forked_child_computes_what_its_parent_does():
    """Multi-threaded eager ops (conv, depthwise, pooling, LRN, softmax, broadcasting), a gradient and a compiled
    Plan run in the parent; a fork()ed child (multiprocessing's 'fork' start method, as gunicorn / celery prefork
    workers) runs them all again, multi-threaded, and gets the parent's results (it hung in its first eager op when
    the kernels ran on libgomp, whose pool a child inherits without its threads). The child is timed out, not left to
    hang the run."""
    code, out, err = run_child("""
        import multiprocessing as mp
        import convcore, convcore.functional as F
        convcore.set_num_threads(2)
        convcore._core.set_grain_scale(0.0)  # every kernel takes its parallel path, even on these shapes
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 8, 20, 20)).astype(np.float32)
        w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
        wd = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)

        nn = convcore.nn
        net = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(8, 4))

        def work():
            y = F.conv2d(x, w, padding=1)
            y = F.add(F.conv2d(y, wd, padding=1, groups=8), x)
            y = F.local_response_norm(F.max_pool2d(y, 2), 3)
            _, g = convcore.grad(net, x[:1], 2)
            plan = convcore.compile(lambda v: F.relu(F.conv2d(v, w, padding=1)), x.shape)
            return [y, g, plan(x)]

        def child(queue):
            queue.put([a.tobytes() for a in work()])

        parent = work()
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        p = ctx.Process(target=child, args=(queue,))
        p.start()
        try:
            got = queue.get(timeout=60)
        except Exception:
            got = None
        p.join(5)
        if p.is_alive():
            p.kill()
        report(finished=got is not None, same=got is not None and got == [a.tobytes() for a in parent])
    """, timeout=180)
    assert code == 0, err[-2000:]
    assert out == {"finished": True, "same": True}
