"""Read model checkpoints into numpy arrays, without torch and without running code from the file.

Formats (detected from the file's content, not its extension):

- PyTorch zip checkpoints (``torch.save`` since torch 1.6): ``<folder>/data.pkl`` + ``<folder>/data/<key>``.
- PyTorch legacy checkpoints (torch < 1.6 or ``_use_new_zipfile_serialization=False``): magic number,
  protocol and sys-info pickles, the main pickle, the storage-key list, then the raw storages.
- ``.safetensors``: 8-byte little-endian header length, JSON header, raw data.
- ``.npz``: read with ``numpy.load(allow_pickle=False)``.

PyTorch pickles go through :class:`_RestrictedUnpickler`, whose ``find_class`` resolves only the few names
that tensor rebuilding needs, each to a stand-in defined here; every other global raises
:class:`UnsafeCheckpointError` before anything from the file runs.

Nothing is sized by a number from the file before that number is checked against the bytes present: each pickle
is scanned opcode by opcode before it is unpickled (only data, container and the calls tensor rebuilding needs;
memo indices in order, so the unpickler's memo cannot be made to grow by a single huge index), and each storage's
uncompressed size is compared with what its pickle declares before it is inflated, then read only as far as its
tensors reach.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import pickletools
import struct
import zipfile
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray
from numpy.lib.stride_tricks import as_strided

__all__ = ["MAX_PICKLE_BYTES", "MAX_SAFETENSORS_HEADER_BYTES", "UnsafeCheckpointError", "load_checkpoint"]

# Resource bounds (docs/limits.md). A checkpoint's pickle holds only names, shapes and small metadata (a few KB to a
# few MB even for large models); the tensors' bytes live outside it.
MAX_PICKLE_BYTES = 64 * 2**20
MAX_SAFETENSORS_HEADER_BYTES = 100_000_000  # the safetensors library's own bound

# Wrapper keys unwrapped, outermost first, when the top-level object is a training checkpoint rather than a
# bare state dict, e.g. {"epoch": 3, "state_dict": {...}, "optimizer": {...}}.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION

# Storage element types. bfloat16 has no numpy dtype: its raw 16 bits are read as uint16 and upcast.
_BF16 = "bfloat16"
_TORCH_STORAGES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": _BF16,
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "ComplexDoubleStorage": "c16", "ComplexFloatStorage": "c8",
    "UntypedStorage": "u1",
}
_SAFETENSORS_DTYPES = {
    "F64": "f8", "F32": "f4", "F16": "f2", "BF16": _BF16, "I64": "i8", "I32": "i4", "I16": "i2", "I8": "i1",
    "U64": "u8", "U32": "u4", "U16": "u2", "U8": "u1", "BOOL": "?",
}
_TORCH_DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
                      "bool", "complex64", "complex128")


class UnsafeCheckpointError(ValueError):
    """A checkpoint's pickle refers to a global that is not needed to rebuild tensors (e.g. ``os.system``)."""


def _storage_dtype(code, byteorder="<"):
    """The numpy dtype a storage's bytes are read as (bfloat16 -> its uint16 bit pattern)."""
    return np.dtype(byteorder + ("u2" if code == _BF16 else code))


class _StandIn:
    """Base of the objects the unpickler hands out: a pickle BUILD opcode must not modify them."""

    __slots__ = ()

    def __setstate__(self, state):
        raise UnsafeCheckpointError(f"refusing to set state on {type(self).__name__} from the checkpoint")


class _Global(_StandIn):
    """A callable allowed global: calls ``fn``."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


class _StorageType(_StandIn):
    """Stand-in for a ``torch.*Storage`` class: only carries the element type."""

    __slots__ = ("code",)

    def __init__(self, code):
        self.code = code


class _Storage(_StandIn):
    """A storage the pickle refers to: ``numel`` elements from ``offset`` of the raw blob ``key``."""

    __slots__ = ("stype", "key", "offset", "numel")

    def __init__(self, stype, key, offset=0, numel=None):
        self.stype, self.key, self.offset, self.numel = stype, key, offset, numel


class _Tensor(_StandIn):
    """A tensor to build once every storage has been read: ``(storage, offset, size, stride)``."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


# Stand-ins for torch._utils' rebuild functions; the extra arguments (requires_grad, hooks, state) are dropped.
def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_unused):
    return data


def _encode_latin1(text, encoding="latin1"):
    # Protocol-2 pickles store bytes objects as _codecs.encode(str, "latin1").
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafeCheckpointError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) -> what the unpickler resolves it to: a callable stand-in, a storage type or a dtype's name.
_SAFE_GLOBALS: dict[tuple[str, str], Union[_Global, _StorageType, str]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _Global(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _Global(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Global(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Global(_rebuild_parameter),
    ("collections", "OrderedDict"): _Global(collections.OrderedDict),
    ("torch", "Size"): _Global(tuple),
    ("_codecs", "encode"): _Global(_encode_latin1),
}
for _name, _code in _TORCH_STORAGES.items():
    _SAFE_GLOBALS["torch", _name] = _SAFE_GLOBALS["torch.storage", _name] = _StorageType(_code)
for _name in _TORCH_DTYPE_NAMES:  # torch dtypes kept in a checkpoint's metadata load as their names
    _SAFE_GLOBALS["torch", _name] = f"torch.{_name}"


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``_SAFE_GLOBALS`` and torch storage persistent ids.

    Every storage met is recorded in ``storages`` (blob key -> storage type of its first use, which is what
    the legacy format sizes the blob by).
    """

    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.storages = {}
        self.numels = {}  # blob key -> the element count its persistent id declares

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[module, name]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load global '{module}.{name}' from the checkpoint: only tensors and plain "
                "containers are allowed (save a model's state_dict(), not the model object)"
            ) from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata]); view_metadata (legacy only) is
        # None or (view_key, offset, view_numel) in elements of the root storage.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise ValueError(f"unsupported persistent id in the checkpoint pickle: {pid!r:.200}")
        stype, key = pid[1], str(pid[2])
        self.storages.setdefault(key, stype)
        self.numels.setdefault(key, pid[4])
        view = pid[5] if len(pid) == 6 else None
        return _Storage(stype, key) if view is None else _Storage(stype, key, view[1], view[2])


# The opcodes a checkpoint pickle may use (protocols 0-5): data, containers, the memo, globals (resolved by
# find_class) with REDUCE / BUILD, and torch's persistent ids. Refused: the object-building INST / OBJ / NEWOBJ /
# NEWOBJ_EX, the copyreg extension registry (EXT1/2/4), out-of-band buffers and text persistent ids.
_PICKLE_OPCODES = frozenset("""
    PROTO FRAME STOP
    INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT NONE NEWTRUE NEWFALSE
    STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8
    BINBYTES SHORT_BINBYTES BINBYTES8
    EMPTY_LIST APPEND APPENDS LIST EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_DICT DICT SETITEM SETITEMS
    EMPTY_SET ADDITEMS FROZENSET MARK POP POP_MARK DUP
    GET BINGET LONG_BINGET PUT BINPUT LONG_BINPUT MEMOIZE
    GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID
""".split())
_MEMO_PUTS = frozenset(("PUT", "BINPUT", "LONG_BINPUT"))


class _Window:
    """A read-only view of at most `limit` bytes of `file` from its current position (for pickletools.genops)."""

    def __init__(self, file, limit):
        self.file, self.left, self.used = file, limit, 0

    def _take(self, data):
        self.left -= len(data)
        self.used += len(data)
        return data

    def read(self, n=-1):
        return self._take(self.file.read(self.left if n < 0 or n > self.left else n))

    def readline(self):
        return self._take(self.file.readline(self.left))

    def tell(self):
        return self.used


def _read_pickle(file):
    """The bytes of the pickle starting at `file`'s position, after checking every opcode (file left after it).

    Checked before anything is unpickled: the size (MAX_PICKLE_BYTES), that every opcode is allowed, that every
    length-prefixed argument is present, and that memo indices come in order: the unpickler grows its memo to the
    largest index it is given, so one PUT of index 2e8 would allocate gigabytes for a 9-byte file.
    """
    start = file.tell()
    window = _Window(file, MAX_PICKLE_BYTES)
    memo = 0
    try:
        for op, arg, pos in pickletools.genops(window):
            if op.name not in _PICKLE_OPCODES:
                raise UnsafeCheckpointError(f"refusing pickle opcode {op.name} (at byte {pos}): only data, "
                                            "containers and tensor rebuilding are allowed in a checkpoint")
            if op.name in _MEMO_PUTS:
                if not 0 <= arg <= memo:
                    raise ValueError(f"pickle memo index {arg} at byte {pos} is out of order (expected at most "
                                     f"{memo})")
                memo = max(memo, arg + 1)
            elif op.name == "MEMOIZE":
                memo += 1
            elif op.name == "FRAME" and arg > window.left:
                raise ValueError(f"pickle frame of {arg} bytes at byte {pos} runs past the end of the pickle")
    except ValueError as exc:
        if window.left == 0 and not isinstance(exc, UnsafeCheckpointError):
            raise ValueError(f"a pickle larger than {MAX_PICKLE_BYTES} bytes (MAX_PICKLE_BYTES), or truncated") \
                from None
        raise
    file.seek(start)
    return file.read(window.used)


def _unpickle(file):
    """Check and load one pickle with the restricted unpickler; returns (object, unpickler)."""
    unpickler = _RestrictedUnpickler(io.BytesIO(_read_pickle(file)))
    return unpickler.load(), unpickler


def _nonneg_ints(value, what):
    """Check ``value`` is a tuple/list of non-negative ints (a tensor's size or stride)."""
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"expected {what} to be a tuple of non-negative ints (got {value!r:.100})")
    return tuple(value)


def _upcast_bf16(bits):
    """bfloat16 bit patterns (uint16) -> float32: bfloat16 is the top half of a float32."""
    wide = bits.astype(np.uint32)
    wide <<= 16  # in place: `wide << 16` would turn a 0-d array into a numpy scalar
    return wide.view(np.float32)


def _tensor_reach(tensor):
    """(storage key, itemsize, elements of the storage the tensor needs: past its last one, or its element count
    if larger), after checking its storage, size, stride and offset are well formed."""
    storage = tensor.storage
    if not isinstance(storage, _Storage):
        raise ValueError(f"expected a storage to rebuild a tensor from (got {type(storage).__name__})")
    size, stride = _nonneg_ints(tensor.size, "a tensor size"), _nonneg_ints(tensor.stride, "a tensor stride")
    (offset,) = _nonneg_ints((tensor.offset,), "a tensor storage offset")
    if len(size) != len(stride):
        raise ValueError(f"tensor size {size} and stride {stride} have different lengths")
    numel = math.prod(size)
    end = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) if numel else 0
    return storage.key, _storage_dtype(storage.stype.code).itemsize, max(end, numel)


class _CopyBudget:
    """Every tensor is an independent copy, so tensors viewing one storage each copy its bytes again: their total is
    bounded by `FACTOR` times the storage bytes read, plus 1 MiB (400 entries viewing one 8 MiB storage asked for
    3.2 GB; tied weights, or bfloat16 upcast to float32, take 2x)."""

    FACTOR = 4

    def __init__(self):
        self.stored, self.copied, self.seen = 0, 0, set()

    def spend(self, key, blob, nbytes):
        if key not in self.seen:
            self.seen.add(key)
            self.stored += len(blob)
        self.copied += nbytes
        if self.copied > self.FACTOR * self.stored + 2**20:
            raise ValueError(f"its tensors would take {self.copied} bytes as independent arrays, more than "
                             f"{self.FACTOR}x the {self.stored} bytes of storage they view (entries overlapping "
                             f"one storage many times)")


def _build_tensor(tensor, read_blob, byteorder, budget):
    """Copy a tensor out of its storage blob, checking that every element it addresses is inside the blob and that
    the copies stay within `budget` (a `_CopyBudget`)."""
    storage = tensor.storage
    if not isinstance(storage, _Storage):
        raise ValueError(f"expected a storage to rebuild a tensor from (got {type(storage).__name__})")
    dtype = _storage_dtype(storage.stype.code, byteorder)
    blob = read_blob(storage.key)
    if len(blob) % dtype.itemsize:
        raise ValueError(f"storage {storage.key!r} has {len(blob)} bytes, not a multiple of {dtype.itemsize}")
    flat = np.frombuffer(blob, dtype=dtype)
    if storage.numel is not None:  # legacy storage view
        begin = _nonneg_ints((storage.offset, storage.numel), "a storage view")[0]
        flat = flat[begin:begin + storage.numel]
    size, stride = _nonneg_ints(tensor.size, "a tensor size"), _nonneg_ints(tensor.stride, "a tensor stride")
    (offset,) = _nonneg_ints((tensor.offset,), "a tensor storage offset")
    if len(size) != len(stride):
        raise ValueError(f"tensor size {size} and stride {stride} have different lengths")
    numel = math.prod(size)
    if numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise ValueError(f"tensor (offset {offset}, size {size}, stride {stride}) reads past the end of "
                             f"its storage {storage.key!r} of {flat.size} elements")
        # A broadcast view (stride 0) could expand a tiny storage into an arbitrarily large array.
        if numel > flat.size:
            raise ValueError(f"tensor of size {size} has more elements than its storage ({flat.size}): "
                             "overlapping (broadcast) tensors are not supported")
        budget.spend(storage.key, blob, numel * (4 if storage.stype.code == _BF16 else dtype.itemsize))
        view = as_strided(flat[offset:], shape=size, strides=[s * dtype.itemsize for s in stride])
        array = np.array(view, dtype=dtype.newbyteorder("="), order="C")
    else:
        array = np.empty(size, dtype=dtype.newbyteorder("="))
    return _upcast_bf16(array) if storage.stype.code == _BF16 else array


def _flatten(obj, build):
    """Unwrap a training checkpoint to its state dict, then flatten nested dicts to dotted names.

    Values that are neither tensors nor dicts (epoch counters, config strings, None) are skipped.
    """
    for _ in range(len(_WRAPPER_KEYS)):  # bounded: a pickle can make a dict that contains itself
        if not isinstance(obj, dict) or any(isinstance(v, _Tensor) for v in obj.values()):
            break
        key = next((k for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            break
        obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"expected the checkpoint to hold a dict of tensors (got {type(obj).__name__})")
    out = {}

    def visit(d, prefix):
        for k, v in d.items():
            if isinstance(v, _Tensor):
                out[prefix + str(k)] = build(v)
            elif isinstance(v, dict):
                visit(v, f"{prefix}{k}.")

    visit(obj, "")
    return out


def _load_torch_zip(file, names):
    with zipfile.ZipFile(file) as zf:
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError(f"expected one '<folder>/data.pkl' in the zip archive (got {pickles})")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in names:
            order = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise ValueError(f"expected byteorder 'little' or 'big' (got {order!r})")
            byteorder = "<" if order == "little" else ">"
        info = zf.getinfo(pickles[0])
        if info.file_size > MAX_PICKLE_BYTES:
            raise ValueError(f"{pickles[0]} is {info.file_size} bytes uncompressed; at most {MAX_PICKLE_BYTES} "
                             "(MAX_PICKLE_BYTES) are read")
        obj, unpickler = _unpickle(io.BytesIO(zf.read(pickles[0])))
        tensors = _flatten(obj, lambda t: t)
        # Before inflating anything: each storage record must hold exactly the bytes its pickle declares, and is
        # read only as far as its tensors reach (a 4-element tensor never inflates a 1 GiB record).
        reach = {}
        for tensor in tensors.values():
            key, itemsize, count = _tensor_reach(tensor)
            reach[key] = max(reach.get(key, 0), count * itemsize)
        for key, nbytes in reach.items():
            name = f"{prefix}data/{key}"
            if name not in names:
                raise ValueError(f"storage {key!r} is missing from the archive ({name})")
            numel = unpickler.numels.get(key)
            if not (isinstance(numel, int) and numel >= 0):
                raise ValueError(f"storage {key!r}: expected a non-negative element count (got {numel!r:.100})")
            declared = numel * _storage_dtype(unpickler.storages[key].code).itemsize
            stored = zf.getinfo(name).file_size
            if stored != declared:
                raise ValueError(f"storage {key!r}: its record holds {stored} bytes, but the checkpoint declares "
                                 f"{numel} elements ({declared} bytes)")
            reach[key] = min(nbytes, declared)
        blobs = {}

        def read_blob(key):
            if key not in blobs:
                with zf.open(f"{prefix}data/{key}") as f:
                    blobs[key] = f.read(reach[key])
            return blobs[key]

        budget = _CopyBudget()
        return {name: _build_tensor(t, read_blob, byteorder, budget) for name, t in tensors.items()}


def _load_torch_legacy(file, file_size):
    magic, _ = _unpickle(file)
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint: the leading pickle is not torch's magic number")
    protocol, _ = _unpickle(file)
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"unsupported legacy PyTorch protocol version {protocol!r} (expected 1001)")
    _unpickle(file)  # sys_info; storages are always written little-endian whatever it says
    obj, unpickler = _unpickle(file)
    storages = unpickler.storages
    keys, _ = _unpickle(file)
    if not isinstance(keys, list):
        raise ValueError(f"expected the legacy storage key list (got {type(keys).__name__})")
    blobs = {}
    for key in keys:
        if key not in storages:
            raise ValueError(f"legacy storage {key!r} is not referenced by the checkpoint")
        header = file.read(8)
        count = struct.unpack("<q", header)[0] if len(header) == 8 else -1
        nbytes = count * _storage_dtype(storages[key].code).itemsize
        if not 0 <= nbytes <= file_size - file.tell():  # checked before reading: the count comes from the file
            raise ValueError(f"the checkpoint is truncated: storage {key!r} is incomplete")
        blobs[key] = file.read(nbytes)

    def read_blob(key):
        if key not in blobs:
            raise ValueError(f"storage {key!r} has no data in the checkpoint")
        return blobs[key]

    budget = _CopyBudget()
    return _flatten(obj, lambda t: _build_tensor(t, read_blob, "<", budget))


def _load_safetensors(file, file_size):
    (header_len,) = struct.unpack("<Q", file.read(8))
    if header_len > file_size - 8:
        raise ValueError(f"safetensors header length {header_len} exceeds the file size {file_size}")
    if header_len > MAX_SAFETENSORS_HEADER_BYTES:
        raise ValueError(f"safetensors header of {header_len} bytes; at most {MAX_SAFETENSORS_HEADER_BYTES} "
                         "(MAX_SAFETENSORS_HEADER_BYTES) are read")
    header = json.loads(file.read(header_len).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("expected the safetensors header to be a JSON object")
    data_start, data_len = 8 + header_len, file_size - 8 - header_len
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or info.get("dtype") not in _SAFETENSORS_DTYPES:
            raise ValueError(f"tensor {name!r}: unsupported safetensors entry {info!r:.100}")
        code = _SAFETENSORS_DTYPES[info["dtype"]]
        shape = _nonneg_ints(info.get("shape"), f"tensor {name!r} shape")
        begin, end = _nonneg_ints(info.get("data_offsets"), f"tensor {name!r} data_offsets")
        dtype = _storage_dtype(code)
        numel = math.prod(shape)
        if not begin <= end <= data_len or end - begin != numel * dtype.itemsize:
            raise ValueError(f"tensor {name!r}: data_offsets [{begin}, {end}] do not match shape {list(shape)} "
                             f"of {info['dtype']} within {data_len} data bytes")
        entries.append((name, code, shape, begin, end))
    # The format (and its library) has the entries tile the data: overlapping ones would each copy the same bytes
    # (300 entries over one 8 MiB range: 2.4 GB from an 8 MiB file).
    reached, reached_by = 0, None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < reached and begin < end:
            raise ValueError(f"tensor {name!r}: data_offsets [{begin}, {end}] overlap those of tensor {reached_by!r} "
                             f"(safetensors entries must not share bytes)")
        if end > reached:
            reached, reached_by = end, name
    out = {}
    for name, code, shape, begin, end in entries:
        dtype = _storage_dtype(code)
        file.seek(data_start + begin)
        array = np.fromfile(file, dtype=dtype, count=math.prod(shape)).reshape(shape)
        out[name] = _upcast_bf16(array) if code == _BF16 else array.astype(dtype.newbyteorder("="), copy=False)
    return out


def _check_npz_members(file):
    """Each .npy member must hold exactly the bytes its header declares, checked before numpy allocates the array
    its header describes (a 200-byte member can declare terabytes)."""
    with zipfile.ZipFile(file) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0), (3, 0)):
                    raise ValueError(f"{info.filename}: unsupported .npy version {version}")
                reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = reader(f)
                if dtype.hasobject:
                    raise ValueError(f"{info.filename}: object arrays are not allowed")
                declared = f.tell() + math.prod(shape) * dtype.itemsize
            if info.file_size != declared:
                raise ValueError(f"{info.filename}: holds {info.file_size} bytes, but its header declares "
                                 f"{declared} (shape {shape}, dtype {dtype})")
    file.seek(0)


def _load_npz(file):
    _check_npz_members(file)
    with np.load(file, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def load_checkpoint(path: Union[str, os.PathLike[str]]) -> dict[str, NDArray[Any]]:
    """Read a checkpoint's tensors into numpy arrays, safely and without importing torch.

    Reads PyTorch ``.pth``/``.pt`` files (zip and legacy formats), ``.safetensors`` and ``.npz``; the format
    is detected from the content. PyTorch pickles are read by a restricted unpickler: a file whose pickle
    refers to anything besides tensors, storages and plain containers is refused and none of its code runs.

    A training checkpoint is unwrapped to its state dict: while the top-level dict holds no tensor, its
    ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` entry (the first one that is a dict) is taken.
    Nested dicts are flattened to dotted names; entries that are not tensors (epochs, config) are dropped.
    Every array is a C-contiguous copy (views and shared storages become independent arrays), in the
    stored dtype except bfloat16, which is upcast to float32. Their total is bounded: at most 4x the storage
    bytes they view, plus 1 MiB (entries viewing one storage many times are refused); safetensors entries must
    not overlap.

    Args:
        path: path of the checkpoint file (str or os.PathLike).

    Returns:
        dict[str, numpy.ndarray]: parameter and buffer names (e.g. ``"conv1.weight"``) to arrays.

    Raises:
        UnsafeCheckpointError: the pickle refers to a disallowed global (the message names it).
        ValueError: the file is truncated, corrupt, or in no supported format.

    Example:
        >>> state = load_checkpoint("resnet18.pth")  # doctest: +SKIP
        >>> state["conv1.weight"].shape  # doctest: +SKIP
        (64, 3, 7, 7)
    """
    with open(path, "rb") as file:
        head = file.read(16)
        file_size = file.seek(0, 2)
        file.seek(0)
        try:
            if head.startswith(b"PK\x03\x04"):
                names = zipfile.ZipFile(file).namelist()
                file.seek(0)
                if any(n.endswith("/data.pkl") for n in names):
                    out = _load_torch_zip(file, names)
                elif names and all(n.endswith(".npy") for n in names):
                    out = _load_npz(file)
                else:
                    raise ValueError("a zip archive that is neither a PyTorch checkpoint nor an .npz")
            elif head.startswith(b"\x80"):  # pickle PROTO opcode: the legacy format starts with pickles
                out = _load_torch_legacy(file, file_size)
            elif len(head) > 8 and head[8:9] == b"{":
                out = _load_safetensors(file, file_size)
            else:
                raise ValueError("unrecognized format (expected a PyTorch .pth, .safetensors or .npz file)")
        except UnsafeCheckpointError:
            raise
        except Exception as exc:  # pickle, zip, json and numpy errors from a corrupt or truncated file
            raise ValueError(f"cannot load checkpoint {str(path)!r}: {exc}") from exc
    if not out:
        raise ValueError(f"cannot load checkpoint {str(path)!r}: it holds no tensors")
    return out
