"""Reading ONNX files without trusting them: parse errors, external-data paths and tensor sizes are all checked.

A tensor's declared size is compared with the bytes actually present (in the file, or in its external-data file)
before anything of that size is allocated, and external data may only come from files inside the model's folder.
"""

import os

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto

# ONNX element type -> (numpy dtype, the TensorProto field holding typed (non-raw) data).
_DTYPES = {
    TensorProto.FLOAT: (np.dtype("<f4"), "float_data"),
    TensorProto.FLOAT16: (np.dtype("<f2"), "int32_data"),  # typed float16 data is stored as uint16 bits in int32s
    TensorProto.DOUBLE: (np.dtype("<f8"), "double_data"),
    TensorProto.INT64: (np.dtype("<i8"), "int64_data"),
    TensorProto.INT32: (np.dtype("<i4"), "int32_data"),
    TensorProto.INT8: (np.dtype("i1"), "int32_data"),
    TensorProto.UINT8: (np.dtype("u1"), "int32_data"),
    TensorProto.BOOL: (np.dtype("?"), "int32_data"),
}
FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)


def read_model(source):
    """Parse an ONNX model from a path, bytes or a `onnx.ModelProto` (serialized and parsed again, so every check
    below applies to it too).

    Returns:
        (ModelProto, folder) where folder is the model file's real directory (None for bytes): external data is
        only read from inside it. External data is not loaded here (see `tensor_to_array`).
    """
    if isinstance(source, onnx.ModelProto):
        data, folder = source.SerializeToString(), None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data, folder = bytes(source), None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"expected an ONNX file path (got {path!r}, which is not a file)")
        with open(path, "rb") as f:
            data = f.read()
        folder = os.path.dirname(os.path.realpath(path))
    else:
        raise TypeError(f"expected a path, bytes or an onnx.ModelProto for the ONNX model "
                        f"(got {type(source).__name__})")
    if not data:
        raise ValueError("expected an ONNX model (got an empty file)")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"not a valid ONNX model (the protobuf does not parse: {exc})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise ValueError("not a valid ONNX model (no graph or no nodes; the file may be truncated or corrupt)")
    return proto, folder


def _external_bytes(tensor, nbytes, folder, what):
    """The bytes of an external-data tensor, read only after its path, offset and length are checked."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if folder is None:
        raise ValueError(f"{what}: external data ('{location}') cannot be read for a model given as bytes")
    parts = location.replace("\\", "/").split("/")
    if (not location or os.path.isabs(location) or location.startswith(("/", "\\")) or ".." in parts
            or os.path.splitdrive(location)[0] or "\x00" in location):
        raise ValueError(f"{what}: refusing external data location {location!r}: expected a relative path inside "
                         f"the model's folder")
    path = os.path.realpath(os.path.join(folder, location))
    if os.path.commonpath([path, folder]) != folder:  # a symlink pointing outside
        raise ValueError(f"{what}: refusing external data location {location!r}: it resolves outside the model's "
                         f"folder")
    if not os.path.isfile(path):
        raise ValueError(f"{what}: external data file {location!r} does not exist")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else nbytes
    except ValueError:
        raise ValueError(f"{what}: external data offset / length are not integers") from None
    if offset < 0 or length != nbytes:
        raise ValueError(f"{what}: external data declares {length} bytes at offset {offset}, expected {nbytes} "
                         f"bytes for its shape")
    size = os.path.getsize(path)
    if offset + nbytes > size:
        raise ValueError(f"{what}: external data needs bytes {offset}..{offset + nbytes} of {location!r}, which "
                         f"has only {size}")
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(nbytes)


def tensor_to_array(tensor, folder, what):
    """A TensorProto -> numpy array, after checking its declared size against the data present.

    Args:
        tensor: the TensorProto (an initializer or a Constant's value).
        folder: the model's folder for external data (None: external data refused).
        what: how errors name the tensor, e.g. "initializer 'conv1.weight'".
    """
    if tensor.data_type not in _DTYPES:
        name = TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in TensorProto.DataType.values() \
            else str(tensor.data_type)
        raise ValueError(f"{what}: unsupported element type {name}")
    if tensor.HasField("segment"):
        raise ValueError(f"{what}: segmented tensors are not supported")
    dtype, field = _DTYPES[tensor.data_type]
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise ValueError(f"{what}: negative dimension in shape {dims}")
    count = 1
    for d in dims:
        count *= d  # Python ints: no overflow for hostile shapes
    nbytes = count * dtype.itemsize
    if tensor.data_location == TensorProto.EXTERNAL:
        raw = _external_bytes(tensor, nbytes, folder, what)
    elif tensor.HasField("raw_data"):
        raw = tensor.raw_data
        if len(raw) != nbytes:
            raise ValueError(f"{what}: shape {dims} needs {nbytes} bytes of data (got {len(raw)})")
    else:
        values = getattr(tensor, field)
        if len(values) != count:
            raise ValueError(f"{what}: shape {dims} needs {count} values (got {len(values)})")
        try:
            if tensor.data_type == TensorProto.FLOAT16:
                return np.array(values, np.uint16).view(np.float16).reshape(dims)
            return np.array(values, dtype).reshape(dims)
        except (OverflowError, ValueError):
            raise ValueError(f"{what}: values out of range for its element type") from None
    return np.frombuffer(raw, dtype).reshape(dims).copy()
