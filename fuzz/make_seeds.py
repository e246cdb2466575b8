"""Write the seed corpora under fuzz/seeds/ (committed; rerun only to change them): small valid inputs of every
kind each target reads, for the fuzzer to mutate.

    python fuzz/make_seeds.py          # needs torch, onnx, Pillow and safetensors (the test extras)
"""

import collections
import io
import os
import shutil

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")


def _write(kind, name, data):
    os.makedirs(os.path.join(SEEDS, kind), exist_ok=True)
    with open(os.path.join(SEEDS, kind, name), "wb") as f:
        f.write(data)


def onnx_seeds():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import convcore.nn as nn
    import convcore.onnx

    rng = np.random.default_rng(0)
    nets = {
        "convnet": (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(4, 4, 3, groups=4, stride=2, padding=1), nn.ReLU6(),
                                  nn.AvgPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(4, 5),
                                  nn.Softmax(1)), (1, 3, 8, 8)),
        "activations": (nn.Sequential(nn.Conv2d(2, 2, 1), nn.Sigmoid(), nn.Tanh(), nn.SiLU(), nn.Hardswish(),
                                      nn.Hardsigmoid(), nn.LeakyReLU(0.1), nn.LocalResponseNorm(3),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LogSoftmax(1)), (1, 2, 5, 7)),
        "pools": (nn.Sequential(nn.MaxPool2d(3, 2, 1, dilation=1, ceil_mode=True), nn.AvgPool2d(3, 1, 1),
                                nn.AdaptiveMaxPool2d((2, 3)), nn.Conv2d(3, 6, (2, 3), dilation=(1, 2), padding=(1, 2))),
                  (1, 3, 9, 9)),
    }
    for name, (net, shape) in nets.items():
        for module in net.modules():
            for pname, p in module.named_parameters(recurse=False) if hasattr(module, "named_parameters") else ():
                p[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.5
        proto = convcore.onnx.export(net, None, input_shape=shape)
        _write("onnx", f"{name}.onnx", proto.SerializeToString())

    # Transformer and detector parts the Plan lowers as sequences (issue 21): a token block with a layer norm, a
    # spelled-out attention and GELU; a channel shuffle; a detector head concatenating flattened levels.
    import convcore.functional as F

    own = np.random.default_rng(21)  # (its own generator: the seeds below stay as they were)

    def r(*shape):
        return own.standard_normal(shape).astype(np.float32) * 0.5

    wc, wq, wo, w1 = r(6, 3, 1, 1), r(18, 6), r(6, 6), r(12, 6)
    heads, length, d = 2, 12, 3

    def transformer(x):
        t = F.transpose(F.flatten(F.conv2d(x, wc), 2), (0, 2, 1))
        parts = F.transpose(F.reshape(F.linear(F.layer_norm(t, r(6), r(6)), wq), (-1, length, 3, heads, d)),
                            (2, 0, 3, 1, 4))
        q, k, v = (F.reshape(F.slice(parts, [i], [i + 1], [0]), (-1, heads, length, d)) for i in range(3))
        scores = F.softmax(F.matmul(F.mul(q, np.float32(0.5)), F.transpose(k, (0, 1, 3, 2))), axis=3)
        mixed = F.reshape(F.transpose(F.matmul(scores, v), (0, 2, 1, 3)), (-1, length, heads * d))
        h = F.linear(F.add(t, F.linear(mixed, wo)), w1)
        gelu = F.mul(F.mul(h, F.add(F.erf(F.div(h, np.float32(np.sqrt(2)))), np.float32(1))), np.float32(0.5))
        return gelu

    def shuffle(x):
        y = F.concat([F.conv2d(x, wc), F.conv2d(x, wc)], axis=1)
        return F.reshape(F.transpose(F.reshape(y, (-1, 2, 6, 3, 4)), (0, 2, 1, 3, 4)), (-1, 12, 3, 4))

    def head(x):
        levels = [F.conv2d(x, wc), F.conv2d(F.max_pool2d(x, 2), wc)]
        return F.transpose(F.concat([F.flatten(v, 2) for v in levels], axis=2), (0, 2, 1))

    for name, fn in {"transformer": transformer, "shuffle": shuffle, "detector_head": head}.items():
        proto = convcore.onnx.export(convcore.trace(fn, (1, 3, 3, 4)), None)
        _write("onnx", f"{name}.onnx", proto.SerializeToString())

    # Values that move (plan/permute.py) and a Plan LSTM: a CRNN head over the columns, gathers, pads, concats.
    moved = np.random.default_rng(28)

    def m(*shape):
        return moved.standard_normal(shape).astype(np.float32) * 0.5

    wl, rl, bl, head_w = m(2, 16, 6), m(2, 16, 4), m(2, 32), m(5, 8)

    def crnn(x):
        seq = F.reshape(F.transpose(F.conv2d(x, wc), (3, 0, 1, 2)), (4, 1, 18))        # (W, N, C * H)
        y = F.lstm(F.linear(seq, m(6, 18)), wl, rl, bl, hidden_size=4, direction="bidirectional")
        cols = F.linear(F.flatten(F.transpose(y, (0, 2, 1, 3)), 2), head_w)              # (W, N, 5)
        rows = F.pad(F.concat([F.conv2d(x, wc), F.conv2d(x, wc)], axis=2), (0, 0, 0, 0, 1, 1, 2, 0), mode="reflect")
        return cols, F.gather(rows, [0, 2], axis=3)

    proto = convcore.onnx.export(convcore.trace(crnn, (1, 3, 3, 4)), None)
    _write("onnx", "crnn_moves.onnx", proto.SerializeToString())

    def one_node(name, node, inputs, output_shape, initializers=(), opset=17):
        graph = helper.make_graph([node], name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                                 for n, s in inputs],
                                  [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, output_shape)],
                                  [numpy_helper.from_array(a, n) for n, a in initializers])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        _write("onnx", f"{name}.onnx", model.SerializeToString())

    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    one_node("conv_group", helper.make_node("Conv", ["x", "w"], ["y"], group=2, strides=[2, 1], pads=[1, 0, 1, 2],
                                            kernel_shape=[3, 3]), [("x", [1, 4, 6, 6])], [1, 4, 3, 6], [("w", w)])
    one_node("add_bcast", helper.make_node("Add", ["x", "b"], ["y"]), [("x", [1, 3, 2, 2])], [1, 3, 2, 2],
             [("b", rng.standard_normal((3, 1, 1)).astype(np.float32))])
    one_node("gemm", helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1, alpha=0.5), [("x", [2, 3])], [2, 4],
             [("w", rng.standard_normal((4, 3)).astype(np.float32)), ("c", rng.standard_normal(4).astype(np.float32))])
    one_node("div_const", helper.make_node("Div", ["x", "d"], ["y"]), [("x", [1, 2, 2, 2])], [1, 2, 2, 2],
             [("d", np.array([2.0], np.float32))])
    one_node("concat", helper.make_node("Concat", ["x", "c"], ["y"], axis=1), [("x", [1, 2, 2, 2])], [1, 3, 2, 2],
             [("c", np.ones((1, 1, 2, 2), np.float32))])
    one_node("softmax_11", helper.make_node("Softmax", ["x"], ["y"], axis=1), [("x", [2, 5])], [2, 5], opset=11)
    one_node("clip", helper.make_node("Clip", ["x", "lo", "hi"], ["y"]), [("x", [1, 1, 2, 2])], [1, 1, 2, 2],
             [("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))])
    one_node("reshape", helper.make_node("Reshape", ["x", "s"], ["y"]), [("x", [1, 2, 2, 2])], [1, 8],
             [("s", np.array([1, -1], np.int64))])
    one_node("pad_conv", helper.make_node("Pad", ["x", "p"], ["y"]), [("x", [1, 1, 2, 2])], [1, 1, 4, 4],
             [("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    one_node("global_pool", helper.make_node("GlobalAveragePool", ["x"], ["y"]), [("x", [1, 3, 4, 5])], [1, 3, 1, 1])

    # A dynamic batch ("N") reaching shape arithmetic, and integer inputs fed at run time (the fuzz target binds them
    # to the values in the metadata key "convcore.fuzz.<input>"): issue 22 item 3.
    def graph_model(name, nodes, initializers=(), int_inputs=(), x_shape=("N", 2, 3, 4)):
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
        inputs += [helper.make_tensor_value_info(n, TensorProto.INT64, [len(v)]) for n, v in int_inputs]
        graph = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        for n, v in int_inputs:
            model.metadata_props.add(key=f"convcore.fuzz.{n}", value=",".join(map(str, v)))
        onnx.checker.check_model(onnx.shape_inference.infer_shapes(model))  # (the output's shape left open)
        _write("onnx", f"{name}.onnx", model.SerializeToString())

    node = helper.make_node
    i64 = lambda values: np.asarray(values, np.int64)  # noqa: E731
    shape_n = [node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["n"])]
    graph_model("batch_mul", shape_n + [node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
                                        node("Mul", ["x", "nf"], ["y"])], [("zero", i64(0))])
    graph_model("batch_reshape", [node("Reshape", ["x", "shape"], ["y"])], [("shape", i64([1, -1, 3, 4]))])
    graph_model("batch_zeros_concat", [node("Shape", ["x"], ["s"]), node("ConstantOfShape", ["s"], ["z"]),
                                       node("Concat", ["x", "z"], ["y"], axis=0)])
    graph_model("batch_view", [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Shape", ["c"], ["s"]),
                               node("Gather", ["s", "zero"], ["n"]), node("Unsqueeze", ["n", "axes"], ["n1"]),
                               node("Concat", ["n1", "minus1"], ["shape"], axis=0),
                               node("Reshape", ["c", "shape"], ["r"]),
                               node("Gemm", ["r", "fc"], ["y"], transB=1)],
                [("zero", i64(0)), ("axes", i64([0])), ("minus1", i64([-1])),
                 ("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32)),
                 ("fc", rng.standard_normal((5, 36)).astype(np.float32))])
    graph_model("batch_resize", [node("Shape", ["x"], ["s"]), node("Slice", ["s", "start", "end"], ["nc"]),
                                 node("Concat", ["nc", "hw"], ["sizes"], axis=0),
                                 node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear")],
                [("start", i64([0])), ("end", i64([2])), ("hw", i64([5, 7]))])
    graph_model("shape_input_reshape", [node("Reshape", ["x", "shape"], ["r"]), node("Relu", ["r"], ["y"])],
                int_inputs=[("shape", [-1, 6, 2, 2])])
    graph_model("shape_input_expand", [node("Expand", ["x", "shape"], ["y"])], int_inputs=[("shape", [1, 2, 1, 1])],
                x_shape=("N", 1, 3, 4))


def checkpoint_seeds():
    import torch
    from safetensors.numpy import save as save_safetensors

    state = collections.OrderedDict([("conv.weight", torch.arange(8.0).reshape(2, 1, 2, 2)),
                                     ("conv.bias", torch.tensor([0.5, -1.0])),
                                     ("bn.num_batches_tracked", torch.tensor(3)),
                                     ("half", torch.ones(3, dtype=torch.float16)),
                                     ("bf16", torch.ones(2, dtype=torch.bfloat16))])
    view = torch.arange(12.0)
    for name, obj, kwargs in [
            ("zip.pth", state, {}),
            ("zip_wrapped.pth", {"epoch": 2, "state_dict": state, "opt": {"lr": 0.1, "betas": (0.9, 0.99)}}, {}),
            ("zip_views.pth", {"a": view[2:6], "b": view.reshape(3, 4).t(), "c": view[::3]}, {}),
            ("zip_proto4.pth", state, {"pickle_protocol": 4}),
            ("legacy.pth", state, {"_use_new_zipfile_serialization": False}),
            ("legacy_views.pth", {"a": view[2:6], "b": view[::2]}, {"_use_new_zipfile_serialization": False})]:
        buf = io.BytesIO()
        torch.save(obj, buf, **kwargs)
        _write("checkpoint", name, buf.getvalue())
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5], np.float64),
              "i": np.arange(3, dtype=np.int64)}
    _write("checkpoint", "tensors.safetensors", save_safetensors(arrays, metadata={"format": "pt"}))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _write("checkpoint", "arrays.npz", buf.getvalue())
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _write("checkpoint", "arrays_compressed.npz", buf.getvalue())


def image_seeds():
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((12, 9, 3)) * 255).astype(np.uint8))
    for name, img, fmt, kwargs in [
            ("rgb.png", rgb, "PNG", {}), ("gray.png", rgb.convert("L"), "PNG", {}),
            ("palette.png", rgb.convert("P"), "PNG", {}), ("rgba.png", rgb.convert("RGBA"), "PNG", {}),
            ("gray16.png", Image.fromarray((rng.random((5, 7)) * 65535).astype(np.uint16)), "PNG", {}),
            ("rgb.jpg", rgb, "JPEG", {"quality": 80}), ("progressive.jpg", rgb, "JPEG", {"progressive": True}),
            ("cmyk.jpg", rgb.convert("CMYK"), "JPEG", {}), ("rgb.gif", rgb.convert("P"), "GIF", {}),
            ("rgb.bmp", rgb, "BMP", {}), ("rgb.webp", rgb, "WEBP", {"quality": 80}),
            ("lossless.webp", rgb, "WEBP", {"lossless": True}), ("rgb.tif", rgb, "TIFF", {}),
            ("packbits.tif", rgb, "TIFF", {"compression": "packbits"}), ("rgb.ppm", rgb, "PPM", {}),
            ("gray.pgm", rgb.convert("L"), "PPM", {})]:
        buf = io.BytesIO()
        img.save(buf, fmt, **kwargs)
        _write("image", name, buf.getvalue())
    # A JPEG with an EXIF orientation (rotated on load) and a thin PNG (the long-side blow-up of issue 10 item 5).
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", exif=exif.tobytes())
    _write("image", "exif_rotated.jpg", buf.getvalue())
    buf = io.BytesIO()
    Image.new("RGB", (2500, 1), (200, 20, 20)).save(buf, "PNG", optimize=True)
    _write("image", "thin.png", buf.getvalue())


if __name__ == "__main__":
    shutil.rmtree(SEEDS, ignore_errors=True)
    onnx_seeds()
    checkpoint_seeds()
    image_seeds()
    for kind in sorted(os.listdir(SEEDS)):
        files = os.listdir(os.path.join(SEEDS, kind))
        size = sum(os.path.getsize(os.path.join(SEEDS, kind, f)) for f in files)
        print(f"{kind}: {len(files)} seeds, {size} bytes")
