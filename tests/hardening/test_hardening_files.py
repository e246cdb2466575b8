"""Issue 10, items 4, 5, 6 and 12: hostile files given to the checkpoint reader and the commands. Cases that used
to blow up run in a child process that reports its own peak memory."""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from convcore.io import load_checkpoint

from .helpers import run_child

torch = pytest.importorskip("torch")


# ---- item 4: the checkpoint reader sizes nothing from an unchecked number --------------------------------------

def _load_in_child(path):
    code, out, err = run_child(f"""
        from convcore.io import load_checkpoint
        mark()
        try:
            state = load_checkpoint({str(path)!r})
            report(outcome="loaded", shapes={{k: list(v.shape) for k, v in state.items()}},
                   values={{k: v.ravel()[:8].tolist() for k, v in state.items()}})
        except ValueError as exc:
            report(outcome="ValueError", message=str(exc))
        report(peak_mb=peak_mb())
    """)
    assert code == 0, err[-2000:]
    return out


def test_item04_huge_memo_index_is_refused_before_unpickling(tmp_path):
    path = tmp_path / "memo.pth"
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", 2 * 10**8) + b".")  # EMPTY_DICT, LONG_BINPUT 2e8, STOP
    out = _load_in_child(path)
    assert out["outcome"] == "ValueError" and "memo index 200000000" in out["message"]
    assert out["peak_mb"] < 100


@pytest.mark.parametrize("opcode", [b"(c__main__\nX\no.", b"c__main__\nX\n)\x81.", b"\x82\x01)."])
def test_item04_object_building_opcodes_are_refused(tmp_path, opcode):
    path = tmp_path / "op.pth"
    path.write_bytes(b"\x80\x02" + opcode)  # OBJ, NEWOBJ, EXT1
    with pytest.raises(ValueError, match="refusing pickle opcode"):
        load_checkpoint(path)


class _StorageRef:
    def __init__(self, key, numel):
        self.pid = ("storage", torch.FloatStorage, key, "cpu", numel)


class _TensorRef:
    def __init__(self, storage, size):
        self.args = (storage, 0, tuple(size), (1,) * len(size), False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


def _bomb(path, declared_numel, record_bytes, tensor_numel=4):
    """A zip .pth whose storage '0' record inflates to `record_bytes` (deflated zeros: ~1/1000 of that on disk)."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)
    pickler.persistent_id = lambda obj: obj.pid if isinstance(obj, _StorageRef) else None
    pickler.dump({"w": _TensorRef(_StorageRef("0", declared_numel), (tensor_numel,))})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = b"\0" * 2**20
            for _ in range(record_bytes // len(chunk)):
                f.write(chunk)
    return path


def test_item04_storage_record_larger_than_declared_is_refused_before_inflating(tmp_path):
    """The storage record inflates to 256 MiB while the checkpoint declares 4 floats."""
    path = tmp_path / "bomb.pth"
    assert os.path.getsize(_bomb(path, 4, 2**28)) < 2**20
    out = _load_in_child(path)
    assert out["outcome"] == "ValueError" and "holds 268435456 bytes" in out["message"], out
    assert out["peak_mb"] < 100


def test_item04_storage_is_read_only_as_far_as_its_tensors_reach(tmp_path):
    """A 256 MiB storage (declared and present) under a 4-element tensor: only 16 bytes are inflated."""
    path = _bomb(tmp_path / "view.pth", 2**26, 2**28)
    out = _load_in_child(path)
    assert out["outcome"] == "loaded" and out["shapes"] == {"w": [4]} and out["values"] == {"w": [0.0] * 4}
    assert out["peak_mb"] < 100


def test_item04_real_checkpoints_still_load(tmp_path):
    state = {"a": torch.arange(10.0)[2:6], "b": torch.ones(2, 3, dtype=torch.bfloat16), "c": torch.arange(5)}
    for kwargs in ({}, {"_use_new_zipfile_serialization": False}, {"pickle_protocol": 4}, {"pickle_protocol": 5}):
        torch.save({"epoch": 1, "state_dict": state}, tmp_path / "ok.pth", **kwargs)
        got = load_checkpoint(tmp_path / "ok.pth")
        assert set(got) == {"a", "b", "c"}
        for key in got:
            np.testing.assert_array_equal(got[key], state[key].float().numpy() if key == "b" else state[key].numpy())


def test_item04_npz_member_sizes_are_checked_against_their_headers(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, w=np.ones(4, np.float32))
    with zipfile.ZipFile(path) as zf:
        member = zf.read("w.npy")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", member.replace(b"'shape': (4,)", b"'shape': (9,)"))  # 20 bytes of data missing
    with pytest.raises(ValueError, match=r"w.npy: holds .* bytes, but its header declares"):
        load_checkpoint(path)


# ---- item 5: images whose resized size would be huge -----------------------------------------------------------

def _png(path, width, height):
    from PIL import Image

    Image.new("RGB", (width, height), (200, 20, 20)).save(path, optimize=True)
    return path


@pytest.mark.parametrize("width, height", [(2500, 1), (5000, 1), (1, 5000)])
def test_item05_extreme_aspect_ratio_preprocesses_within_bounded_memory(tmp_path, width, height):
    pytest.importorskip("PIL")
    path = _png(tmp_path / "thin.png", width, height)
    assert os.path.getsize(path) < 200
    code, out, err = run_child(f"""
        import time
        from convcore import data, transforms as T
        preset = data.imagenet_preset(224, resize=256, interpolation="bicubic")
        mark()
        t0 = time.perf_counter()
        x = preset(T.load_image({str(path)!r}))
        report(shape=list(x.shape), seconds=time.perf_counter() - t0, peak_mb=peak_mb())
    """)
    assert code == 0, err[-2000:]
    assert out["shape"] == [3, 224, 224] and out["peak_mb"] < 100 and out["seconds"] < 5, out


def test_item05_fused_resize_and_crop_equal_the_two_steps():
    from convcore import transforms as T

    rng = np.random.default_rng(0)
    for shape in [(1, 50, 3), (50, 1, 3), (7, 300, 3), (300, 7), (233, 251, 3)]:
        img = (rng.random(shape) * 255).astype(np.uint8)
        for interpolation in ("bilinear", "bicubic", "nearest"):
            for size, crop in [(256, 224), (16, 8), (16, 300), ((20, 30), (5, 40))]:
                for x in (img, img.astype(np.float32) / 255):
                    fused = T.Compose([T.Resize(size, interpolation), T.CenterCrop(crop)])(x)
                    np.testing.assert_array_equal(fused, T.center_crop(T.resize(x, size, interpolation), crop))


def test_item05_decoded_and_resized_sizes_are_bounded(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    from convcore import transforms as T
    from convcore.transforms import _checks

    monkeypatch.setattr(_checks, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ValueError, match=r"image of 200x100 = 20000 pixels is larger than the 10000 pixels"):
        T.load_image(_png(tmp_path / "big.png", 200, 100))
    with pytest.raises(ValueError, match=r"resize: the output of 200x100 = 20000 pixels"):
        T.resize(np.zeros((10, 20, 3), np.uint8), 100)


def test_item05_classify_a_folder_with_a_thin_png(tmp_path, capsys):
    """The reported case end to end: `convcore classify DIR` with the 85-byte 1x2500 PNG beside a photo."""
    onnx = pytest.importorskip("onnx")  # noqa: F841
    pytest.importorskip("PIL")
    model = _tiny_onnx(tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    _png(folder / "thin.png", 2500, 1)
    _png(folder / "photo.png", 64, 48)
    code, out, err = run_child(f"""
        from convcore.cli import main
        mark()
        status = main(["classify", {str(folder)!r}, "--model", {str(model)!r}, "--json", "--no-progress"])
        report(status=status, peak_mb=peak_mb())
    """)
    assert code == 0, err[-2000:]
    assert out["status"] == 0 and out["peak_mb"] < 300, (out, err[-2000:])


def _tiny_onnx(tmp_path):
    """A 224x224 classifier small enough to run in milliseconds."""
    import convcore.nn as nn
    import convcore.onnx

    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    path = tmp_path / "tiny.onnx"
    convcore.onnx.export(net, str(path), input_shape=(1, 3, 224, 224))
    return path


# ---- item 6: a FIFO among the images ---------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_item06_fifo_in_a_folder_is_reported_and_skipped(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("PIL")
    model = _tiny_onnx(tmp_path)
    folder = tmp_path / "images"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")
    _png(folder / "good.png", 64, 48)
    code, out, err = run_child(f"""
        from convcore.cli import main
        report(status=main(["classify", {str(folder)!r}, "--model", {str(model)!r}, "--json", "--no-progress"]))
    """, timeout=60)
    assert code == 0, err[-2000:]
    assert out["status"] == 0
    assert "skipped" in err and "pipe.jpg" in err and "expected a regular image file (got a FIFO)" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_item06_load_image_never_opens_a_fifo_for_a_blocking_read(tmp_path):
    """In a child with a timeout: reading a FIFO that has no writer would block forever."""
    pytest.importorskip("PIL")
    os.mkfifo(tmp_path / "pipe.png")
    code, out, err = run_child(f"""
        from convcore.transforms import load_image
        for path in ({str(tmp_path / "pipe.png")!r}, {str(tmp_path)!r}, "/dev/zero"):
            try:
                load_image(path)
            except (ValueError, OSError) as exc:
                report(**{{path: str(exc)}})
    """, timeout=60)
    assert code == 0, err[-2000:]
    assert out[str(tmp_path / "pipe.png")].endswith("expected a regular image file (got a FIFO)")
    assert out[str(tmp_path)].endswith("(got a folder)")
    assert out["/dev/zero"].endswith("(got a character device)")


# ---- item 12: `convcore run` on a bad input file ---------------------------------------------------------------

@pytest.mark.parametrize("content, words", [(b"", "got an empty file"), (b"\x93NUMPY\x01\x00", "expected a .npy"),
                                            (b"not numpy at all", "expected a .npy"), (None, "no such file"),
                                            ("npz", "got an .npz archive")])
def test_item12_run_names_a_bad_input_file(tmp_path, capsys, content, words):
    pytest.importorskip("onnx")
    from convcore.cli import main

    model = _tiny_onnx(tmp_path)
    path = tmp_path / "x.npy"
    if content == "npz":
        np.savez(path, x=np.zeros(3, np.float32))
        os.replace(tmp_path / "x.npy.npz", path)
    elif content is not None:
        path.write_bytes(content)
    status = main(["run", str(model), str(path)])
    err = capsys.readouterr().err
    if content is None:  # a missing file is a usage error (exit 2), as in every command
        assert status == 2 and err.startswith(f"convcore: error: input: no such file: {path}"), err
        return
    assert status == 1
    assert err.startswith("convcore: error: input ") and str(path) in err and words in err, err
