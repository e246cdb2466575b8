"""Hand-crafted checkpoints: malicious pickles are refused without running, corrupt files raise ValueError."""

import builtins
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import zipfile

import numpy as np
import pytest

from convcore.io import UnsafeCheckpointError, load_checkpoint

torch = pytest.importorskip("torch")

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class Storage:
    """Placeholder pickled as a torch persistent id ('storage', type, key, location, numel)."""

    def __init__(self, key, numel, storage_type=None, view=None):
        self.pid = ("storage", storage_type or torch.FloatStorage, key, "cpu", numel)
        self.view = view


class Tensor:
    """Pickles exactly like torch's tensor __reduce_ex__, with whatever offset/size/stride we choose."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class Call:
    """A payload: unpickling it calls func(*args)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Pickler(pickle.Pickler):
    legacy = False

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        return obj.pid + (obj.view,) if self.legacy else obj.pid  # the legacy format adds view_metadata


def dumps(obj, legacy=False):
    buf = io.BytesIO()
    pickler = Pickler(buf, protocol=2)
    pickler.legacy = legacy
    pickler.dump(obj)
    return buf.getvalue()


def write_zip(path, obj=None, blobs=(), pickled=None, byteorder="little"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", dumps(obj) if pickled is None else pickled)
        z.writestr("archive/byteorder", byteorder)
        z.writestr("archive/version", "3\n")
        for key, data in dict(blobs).items():
            z.writestr(f"archive/data/{key}", data)
    return path


def write_legacy(path, obj, blobs=()):
    """blobs: key -> float32 array, written as torch's legacy format does (int64 count, raw bytes)."""
    with open(path, "wb") as f:
        for header in [LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}]:
            pickle.dump(header, f, protocol=2)
        f.write(dumps(obj, legacy=True))
        blobs = dict(blobs)
        pickle.dump(sorted(blobs), f, protocol=2)
        for key in sorted(blobs):
            f.write(struct.pack("<q", blobs[key].size) + blobs[key].astype("<f4").tobytes())
    return path


def write(fmt, path, obj, values=None):
    """A checkpoint holding obj, whose storage '0' holds the float32 values."""
    values = np.arange(4, dtype=np.float32) if values is None else values
    if fmt == "zip":
        return write_zip(path, obj, {"0": values.tobytes()})
    return write_legacy(path, obj, {"0": values})


def payloads(marker):
    return {
        "posix.system": Call(os.system, f"touch {marker}"),
        "builtins.eval": Call(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": Call(subprocess.Popen, ["touch", str(marker)]),
    }


@pytest.mark.skipif(os.name != "posix", reason="the payloads run `touch`")
def test_payload_runs_under_plain_pickle(tmp_path):
    """Control: the payloads below do create the marker when unpickled normally."""
    for i, payload in enumerate(payloads(tmp_path / "marker").values()):
        marker = tmp_path / "marker"
        result = pickle.loads(dumps(payload))
        if isinstance(result, subprocess.Popen):
            result.wait()
        assert marker.exists(), i
        marker.unlink()


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("name", ["posix.system", "builtins.eval", "subprocess.Popen"])
@pytest.mark.parametrize("where", ["beside_tensor", "wrapped", "top_level"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, fmt, name, where):
    marker = tmp_path / "pwned"
    evil = payloads(marker)[name]
    tensor = Tensor(Storage("0", 4), 0, (4,), (1,))
    obj = {"weight": tensor, "bias": evil} if where == "beside_tensor" else evil
    obj = {"state_dict": obj} if where == "wrapped" else obj
    path = write(fmt, tmp_path / "evil.pth", obj)
    # The message names the global as pickled (protocol 2 spells builtins "__builtin__").
    with pytest.raises(UnsafeCheckpointError, match=r"global '[\w.]*\." + name.split(".")[1] + "'"):
        load_checkpoint(path)
    assert not marker.exists()
    assert issubclass(UnsafeCheckpointError, ValueError)


@pytest.mark.parametrize("target", ["torch._utils\n_rebuild_tensor_v2", "torch\nFloatStorage",
                                    "collections\nOrderedDict"])
def test_build_on_an_allowed_global_is_refused(tmp_path, target):
    # GLOBAL target; EMPTY_DICT; 'fn' or 'code' -> a string; SETITEM; BUILD (set state on the global); STOP
    state = b"}X\x04\x00\x00\x00codeX\x01\x00\x00\x00Os" + b"X\x02\x00\x00\x00fnX\x01\x00\x00\x00Os"
    pickled = b"\x80\x02c" + target.encode() + b"\n" + state + b"b."
    with pytest.raises(UnsafeCheckpointError, match="set state"):
        load_checkpoint(write_zip(tmp_path / "b.pth", pickled=pickled))
    # The stand-ins are unchanged: a normal checkpoint still loads.
    torch.save({"w": torch.ones(3)}, tmp_path / "ok.pth")
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "ok.pth")["w"], np.ones(3, np.float32))


def test_unsupported_torch_global_is_refused(tmp_path):
    torch.save({"s": torch.eye(3).to_sparse()}, tmp_path / "s.pth")
    with pytest.raises(UnsafeCheckpointError, match="_rebuild_sparse_tensor"):
        load_checkpoint(tmp_path / "s.pth")


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_crafted_tensor_matches_torch(tmp_path, fmt):
    values = np.arange(12, dtype=np.float32)
    path = write(fmt, tmp_path / "ok.pth", {"w": Tensor(Storage("0", 12), 1, (2, 3), (1, 4))}, values)
    want = torch.load(path, weights_only=True)["w"].numpy()
    np.testing.assert_array_equal(load_checkpoint(path)["w"], want)
    np.testing.assert_array_equal(want, [[1, 5, 9], [2, 6, 10]])  # w[i, j] = values[1 + i + 4 * j]


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("offset, size, stride, message", [
    (0, (2, 2), (4, 1), "past the end"),
    (3, (2,), (1,), "past the end"),
    (10**18, (1,), (1,), "past the end"),
    (0, (2, 2), (-1, 1), "non-negative"),
    (-1, (2,), (1,), "non-negative"),
    (0, (2, -2), (1, 1), "non-negative"),
    (0, (2, 2), (1,), "different lengths"),
    (0, (1000, 1000), (0, 0), "more elements than its storage"),
    (0, "ab", (1,), "tuple of non-negative ints"),
])
def test_out_of_bounds_tensor_is_refused(tmp_path, fmt, offset, size, stride, message):
    path = write(fmt, tmp_path / "oob.pth", {"w": Tensor(Storage("0", 4), offset, size, stride)})
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)


def test_legacy_storage_view(tmp_path):
    """Old legacy files may point at a view of a storage: (view_key, offset, numel) in elements."""
    values = np.arange(12, dtype=np.float32)
    view = Storage("0", 12, view=("v", 2, 6))  # elements 2..7 of storage "0"
    path = write_legacy(tmp_path / "view.pth", {"w": Tensor(view, 1, (3,), (2,))}, {"0": values})
    np.testing.assert_array_equal(torch.load(path, weights_only=True)["w"].numpy(), [3, 5, 7])
    np.testing.assert_array_equal(load_checkpoint(path)["w"], [3, 5, 7])
    path = write_legacy(tmp_path / "past.pth", {"w": Tensor(view, 0, (7,), (1,))}, {"0": values})
    with pytest.raises(ValueError, match="past the end"):
        load_checkpoint(path)


def test_big_endian_zip(tmp_path):
    values = (np.arange(6) * 1.5).astype(">f4")
    path = write_zip(tmp_path / "be.pth", {"w": Tensor(Storage("0", 6), 0, (2, 3), (3, 1))},
                     {"0": values.tobytes()}, byteorder="big")
    loaded = load_checkpoint(path)["w"]
    assert loaded.dtype == np.float32 and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, np.arange(6, dtype=np.float32).reshape(2, 3) * 1.5)


def test_missing_storage_and_bad_persistent_id(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        load_checkpoint(write_zip(tmp_path / "a.pth", {"w": Tensor(Storage("7", 4), 0, (4,), (1,))}, {}))
    bad = Storage("0", 4)
    bad.pid = ("module", "x")
    with pytest.raises(ValueError, match="persistent id"):
        load_checkpoint(write("zip", tmp_path / "b.pth", {"w": bad}))
    with pytest.raises(ValueError, match="no tensors"):
        load_checkpoint(write("zip", tmp_path / "c.pth", {"epoch": 3}))
    with pytest.raises(ValueError, match="dict of tensors"):
        load_checkpoint(write("legacy", tmp_path / "d.pth", [Tensor(Storage("0", 4), 0, (4,), (1,))]))


def truncations(data):
    return sorted({1, 2, 7, 8, 9, 20, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1})


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_truncated_torch_file(tmp_path, fmt):
    path = tmp_path / "full.pth"
    torch.save({"w": torch.randn(64, 8), "b": torch.randn(8)}, path, _use_new_zipfile_serialization=fmt == "zip")
    data = path.read_bytes()
    for n in [0] + truncations(data):
        (tmp_path / "cut.pth").write_bytes(data[:n])
        with pytest.raises(ValueError):
            load_checkpoint(tmp_path / "cut.pth")


def test_corrupted_legacy_bytes_never_crash(tmp_path):
    """Single-byte corruptions of a legacy file either load or raise ValueError; nothing else escapes."""
    path = tmp_path / "full.pth"
    torch.save({"w": torch.linspace(-1, 1, 6).view(3, 2), "b": torch.arange(3)}, path,
               _use_new_zipfile_serialization=False)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for position, value in zip(rng.integers(0, len(data), 400), rng.integers(0, 256, 400)):
        corrupt = data.copy()
        corrupt[position] = value
        (tmp_path / "bad.pth").write_bytes(corrupt)
        try:
            load_checkpoint(tmp_path / "bad.pth")
        except ValueError:
            pass


def safetensors_file(path, header, data=b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize("header, data, message", [
    ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 8, "data_offsets"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, "data_offsets"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [16, 8]}}, b"\0" * 16, "data_offsets"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "non-negative"),
    ({"w": {"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 8]}}, b"\0" * 8, "data_offsets"),
    ({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, "unsupported"),
    ({"w": [1, 2]}, b"", "unsupported"),
    ({"__metadata__": {"a": "b"}}, b"", "no tensors"),
])
def test_inconsistent_safetensors(tmp_path, header, data, message):
    with pytest.raises(ValueError, match=message):
        load_checkpoint(safetensors_file(tmp_path / "x.safetensors", header, data))


def test_corrupt_safetensors_header(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(ValueError, match="header length"):
        load_checkpoint(path)
    path.write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(ValueError):
        load_checkpoint(path)


def test_npz_object_arrays_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "o.npz", w=np.array([Call(os.system, f"touch {marker}")], dtype=object))
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "o.npz")
    assert not marker.exists()


def test_unrecognized_files(tmp_path):
    cases = {"empty": b"", "text": b"hello world, not a checkpoint", "random": bytes(range(256)) * 4}
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "hi")
    cases["zip"] = (tmp_path / "other.zip").read_bytes()
    cases["plain_pickle"] = pickle.dumps({"w": [1.0, 2.0]}, protocol=2)  # a pickle, but not torch's format
    for name, data in cases.items():
        (tmp_path / "f.pth").write_bytes(data)
        with pytest.raises(ValueError):
            load_checkpoint(tmp_path / "f.pth")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pth")
