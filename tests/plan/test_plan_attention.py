"""Multi-head self-attention: the `attention` op against a float64 reference and torch, its ONNX export against
onnxruntime, and the spelled-out form exporters write (reshape, transpose, three slices, matmul, softmax, matmul)
recognised (`graph.passes.fold_attention`) and run as one Plan op."""

import numpy as np
import pytest

from reference import assert_close

import convcore
import convcore.onnx
import convcore.functional as F


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def reference(qkv, heads, scale, bias=None):
    n, length, c = qkv.shape
    d = c // (3 * heads)
    q, k, v = qkv.astype(np.float64).reshape(n, length, 3, heads, d).transpose(2, 0, 3, 1, 4)
    s = q @ k.transpose(0, 1, 3, 2) * scale
    if bias is not None:  # sequence i takes window i % windows
        s = s + np.concatenate([bias] * (n // bias.shape[0]))
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ v).transpose(0, 2, 1, 3).reshape(n, length, heads * d)


@pytest.mark.parametrize("n, length, heads, d", [(1, 1, 1, 1), (2, 7, 3, 5), (1, 40, 8, 15), (3, 17, 2, 16)])
def test_attention_op(n, length, heads, d):
    rng = np.random.default_rng(length)
    qkv = rand(rng, n, length, 3 * heads * d) * 2
    scale = 1 / np.sqrt(d)
    got = F.attention(qkv, heads=heads, scale=scale)
    assert_close(got, reference(qkv, heads, scale), 1e-5)
    torch = pytest.importorskip("torch")
    q, k, v = torch.from_numpy(qkv).reshape(n, length, 3, heads, d).permute(2, 0, 3, 1, 4)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=float(scale))
    assert_close(got, want.permute(0, 2, 1, 3).reshape(n, length, -1).numpy(), 1e-5)


@pytest.mark.parametrize("n, windows, bias_heads", [(4, 2, 3), (3, 1, 1), (6, 3, 1), (2, 2, 3)])
def test_attention_bias(isa, n, windows, bias_heads):
    """A bias on the scores (windows, 1 or heads, L, L), sequence i taking window i % windows (Swin's relative
    positions and shifted-window mask, -100 where windows wrap): the op, its Plan on each isa (one image holding
    every sequence, or a batch of them), torch's float mask."""
    rng = np.random.default_rng(n + windows)
    heads, length, d = 3, 7, 4
    qkv = rand(rng, n, length, 3 * heads * d)
    bias = rand(rng, windows, bias_heads, length, length)
    bias[..., :2, 3:] = -100.0
    got = F.attention(qkv, bias, heads=heads, scale=0.5)
    assert_close(got, reference(qkv, heads, 0.5, bias), 1e-5)
    torch = pytest.importorskip("torch")
    q, k, v = torch.from_numpy(qkv).reshape(n, length, 3, heads, d).permute(2, 0, 3, 1, 4)
    mask = torch.from_numpy(np.concatenate([np.broadcast_to(bias, (windows, heads, length, length))] * (n // windows)))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.5)
    assert_close(got, want.permute(0, 2, 1, 3).reshape(n, length, -1).numpy(), 1e-5)
    w = rand(rng, 3 * heads * d, heads * d) * 0.5

    def fn(x):  # x: (1, C, n * L) -> the sequences as one image (a batch-1 plan), or (n, C, L) as n images
        seqs = F.reshape(F.linear(F.transpose(x, (0, 2, 1)), w), (n, length, 3 * heads * d))
        return F.attention(seqs, bias, heads=heads, scale=0.5)

    for shape in ((1, heads * d, n * length), (n, heads * d, length)):
        x = rand(rng, *shape)
        plan = convcore.compile(fn, shape)
        assert plan.eager_nodes == [] and [op[1] for op in plan.ops()].count("attention") == 1
        assert_close(plan(x), fn(x), 1e-5)


def test_attention_bias_refused():
    qkv = np.zeros((4, 5, 12), np.float32)
    with pytest.raises(ValueError, match=r"bias: expected \(windows, 1 or 2, 5, 5\) with windows dividing 4"):
        F.attention(qkv, np.zeros((3, 1, 5, 5), np.float32), heads=2)
    with pytest.raises(ValueError, match="bias: expected"):
        F.attention(qkv, np.zeros((1, 3, 5, 5), np.float32), heads=2)
    with pytest.raises(TypeError, match="bias"):
        F.attention(qkv, 2, 0.5)  # the attributes are keywords: a positional heads is taken as the bias


def test_attention_refuses_bad_input():
    with pytest.raises(ValueError, match=r"qkv: expected a non-empty \(N, L, 3 \* heads \* D\)"):
        F.attention(np.zeros((1, 4, 10), np.float32), heads=2, scale=1.0)
    with pytest.raises(ValueError, match="heads"):
        F.attention(np.zeros((1, 4, 12), np.float32), heads=0, scale=1.0)
    with pytest.raises(TypeError, match="qkv"):
        F.attention(np.zeros((1, 4, 12), np.float64), heads=2, scale=1.0)


def test_attention_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    w = rand(rng, 24, 6)

    def fn(x):
        return F.attention(F.linear(x, w), heads=2, scale=0.5)

    x = rand(rng, 2, 5, 6)
    path = tmp_path / "attention.onnx"
    convcore.onnx.export(convcore.trace(fn, x.shape), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {session.get_inputs()[0].name: x})[0], fn(x), 1e-5)
    bias = rand(rng, 2, 2, 5, 5)

    def biased(x):
        return F.attention(F.linear(x, w), bias, heads=2, scale=0.5)

    x = rand(rng, 4, 5, 6)
    convcore.onnx.export(convcore.trace(biased, x.shape), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {session.get_inputs()[0].name: x})[0], biased(x), 1e-5)


def _spelled(qkv, heads, scale_at, pick):
    """Attention as paddle2onnx writes it: q, k, v sliced (or gathered) from (3, N, heads, L, D), the scale on q, on
    the scores, or split between them, a zero mask added."""
    n, length, c = qkv.shape
    d = c // (3 * heads)
    t = F.transpose(F.reshape(qkv, (-1, length, 3, heads, d)), (2, 0, 3, 1, 4))
    if pick == "slice":
        q, k, v = (F.reshape(F.slice(t, [i], [i + 1], [0]), (-1, heads, length, d)) for i in range(3))
    else:
        q, k, v = (F.reshape(F.gather(t, [i], axis=0), (-1, heads, length, d)) for i in range(3))
    s = 1 / np.sqrt(d)
    if scale_at == "q":
        q = F.add(F.mul(q, np.float32(s)), np.float32(0))
    scores = F.matmul(q, F.transpose(k, (0, 1, 3, 2)))
    if scale_at == "scores":
        scores = F.div(scores, np.float32(1 / s))
    out = F.matmul(F.softmax(scores, axis=3), v)
    return F.reshape(F.transpose(out, (0, 2, 1, 3)), (-1, length, heads * d))


@pytest.mark.parametrize("scale_at, pick", [("q", "slice"), ("scores", "gather"), ("none", "slice")])
def test_spelled_attention_is_one_plan_op(isa, scale_at, pick):
    """An SVTR-style block (layer norm, qkv projection, attention, output projection, residual) on a sequence from a
    conv map: one segment, the attention one op, results as the eager graph's at batch 1 and 3."""
    rng = np.random.default_rng(2)
    c, heads = 12, 3
    wc, wqkv, wo, lw = rand(rng, c, 3, 1, 1), rand(rng, 3 * c, c) * 0.5, rand(rng, c, c) * 0.5, rand(rng, c)

    def fn(x):
        seq = F.transpose(F.flatten(F.conv2d(x, wc), 2), (0, 2, 1))  # (N, L, C)
        mixed = _spelled(F.linear(F.layer_norm(seq, lw), wqkv), heads, scale_at, pick)
        return F.add(seq, F.linear(mixed, wo))

    plan = convcore.compile(fn, (1, 3, 4, 5))
    for batch in (1, 3):
        x = rand(rng, batch, 3, 4, 5)
        assert_close(plan(x), fn(x), 1e-5)
    kernels = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and kernels.count("attention") == 1, kernels


def test_torch_sequence_first_attention_at_batch_1_is_one_segment():
    """torch's nn.MultiheadAttention as its exporter writes it at batch 1 (ViT): the sequence transposed to
    (L, 1, C), the qkv projection, parts taken with unsqueeze / transpose / squeeze / gather, q and k each scaled by
    the square root, the result merged to (L, C), the output projection, transposed back: the attention becomes
    one op and the views around the projections cancel (graph.passes.commute_views), one segment."""
    rng = np.random.default_rng(3)
    length, c, heads = 9, 12, 3
    d = c // heads
    wqkv, bqkv, wo, lw = rand(rng, 3 * c, c) * 0.4, rand(rng, 3 * c), rand(rng, c, c) * 0.4, rand(rng, c)
    root = np.float32((1 / np.sqrt(d)) ** 0.5)

    def fn(x):
        seq = F.transpose(F.flatten(x, 2), (0, 2, 1))  # (1, L, C)
        t = F.transpose(F.layer_norm(seq, lw), (1, 0, 2))  # (L, 1, C)
        qkv = F.reshape(F.reshape(F.linear(t, wqkv, bqkv), (-1, 1, 3, c)), (1, length, 1, 3, c))
        parts = F.flatten(F.transpose(qkv, (3, 1, 2, 0, 4)), 1, 2)  # (3, L, 1, C)
        q, k, v = (F.reshape(F.transpose(F.reshape(F.gather(parts, i, axis=0), (-1, heads, d)), (1, 0, 2)),
                             (1, heads, length, d)) for i in range(3))
        scores = F.matmul(F.mul(q, root), F.mul(F.transpose(k, (0, 1, 3, 2)), root))
        mixed = F.reshape(F.transpose(F.matmul(F.softmax(scores, axis=3), v), (2, 0, 1, 3)), (length, c))
        out = F.transpose(F.reshape(F.linear(mixed, wo), (-1, 1, c)), (1, 0, 2))
        return F.add(seq, out)

    x = rand(rng, 1, c, 3, 3)
    plan = convcore.compile(fn, x.shape)
    assert_close(plan(x), fn(x), 1e-5)
    kernels = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and kernels.count("attention") == 1 and len(plan._segments()) == 1, kernels


def test_torchvision_swin_attention_runs_inside_the_plan():
    """A small torchvision Swin Transformer exported by torch.onnx.export: its window attention (relative-position
    bias; in shifted blocks the mask added to the scores viewed per window) becomes one attention op per block, the
    whole network one segment (at batch 2 too: each image's windows a block of rows); Plan, eager graph, onnxruntime
    and torch agree at batch 1 and 2."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    ort = pytest.importorskip("onnxruntime")
    import io
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer([4, 4], 16, [2, 2], [2, 4], [4, 4], num_classes=10, stochastic_depth_prob=0.0).eval()
    for block in model.modules():  # a bias table of the size a trained one has (torch initialises it near zero)
        if hasattr(block, "relative_position_bias_table"):
            block.relative_position_bias_table.data.normal_(0, 1)
    buffer = io.BytesIO()
    x = torch.randn(2, 3, 32, 32)
    torch.onnx.export(model, (x[:1],), buffer, dynamo=False, opset_version=17, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(x).numpy()
    for batch in (1, 2):
        xb = x[:batch].numpy()
        net = convcore.onnx.load(buffer.getvalue(), input_shape=xb.shape)
        plan = convcore.compile(net, xb.shape)
        got = plan(xb)
        assert_close(got, session.run(None, {"x": xb})[0], 1e-4)
        assert_close(got, expected[:batch], 1e-4)
        assert_close(got, net(xb), 1e-4)
        assert [op[1] for op in plan.ops()].count("attention") == 4
        assert plan.eager_nodes == [] and len(plan._segments()) == 1  # batch 2: windows in blocks of rows per image
