"""The batch-first rewrite (`convcore.graph.batch_first`): graphs that move the batch out of the first axis (torch's
sequence-first attention, heads merged with the batch, (L * N, E) rows) rewritten so that every value leads with
it, with the same results; graphs whose nodes mix images left as they are; torchvision's ViT at batch 3 whole in
one Plan segment with its attention as one op."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import assert_close

import convcore
import convcore.functional as F
from convcore.graph.batch_first import batch_first


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def leads_with_batch(graph):
    """Every value computed from the input has a first axis that is a whole multiple of the batch, each image's
    values a block of rows."""
    batch = graph.shapes[graph.inputs[0]][0]
    return all(graph.shapes[out][0] % batch == 0 for node in graph.nodes for out in node.outputs)


def check(fn, shape, rewritten=True):
    """fn traced at `shape`: the rewrite's graph computes what fn does (eager and compiled), and is a new graph
    exactly when `rewritten`."""
    rng = np.random.default_rng(0)
    graph = convcore.trace(fn, shape)
    result = batch_first(graph)
    assert (result is not graph) == rewritten
    x = rand(rng, *shape)
    expected = fn(x)
    assert_close(result.run(x), expected, 1e-5)
    if rewritten:
        assert leads_with_batch(result)
        assert not leads_with_batch(graph)
    plan = convcore.compile(fn, shape)
    assert_close(plan(x), expected, 1e-5)
    return result, plan


def test_sequence_first_attention_block():
    """Attention computed sequence-first: (N, L, E) -> (L, N, E), the qkv projection sliced, heads merged with the
    batch (L, N * heads, D) -> (N * heads, L, D), softmax, back to (L * N, E) rows, the output projection, (L, N, E),
    transposed back; a constant scale, a bias of shape (E,), a residual: no transpose moves the batch after the
    rewrite."""
    rng = np.random.default_rng(1)
    n, length, e, heads = 3, 5, 8, 2
    d = e // heads
    wqkv, wo, scale, shift = rand(rng, 3 * e, e), rand(rng, e, e), rand(rng, 1, 1, e), rand(rng, e)

    def fn(x):
        t = F.transpose(x, (1, 0, 2))  # (L, N, E)
        qkv = F.mul(F.linear(t, wqkv), np.float32(0.3))
        q, k, v = (F.transpose(F.reshape(F.slice(qkv, [i * e], [(i + 1) * e], [2]), (length, n * heads, d)),
                               (1, 0, 2)) for i in range(3))  # (N * heads, L, D)
        s = F.softmax(F.matmul(q, F.transpose(k, (0, 2, 1))), axis=2)
        o = F.reshape(F.transpose(F.matmul(s, v), (1, 0, 2)), (length * n, e))  # rows l * N + n
        o = F.add(F.mul(F.reshape(F.linear(o, wo), (length, n, e)), scale), shift)
        return F.add(x, F.transpose(o, (1, 0, 2)))

    result, _ = check(fn, (n, length, e))
    assert not any(node.op == "transpose" and node.attrs["perm"][0] != 0 for node in result.nodes)


@pytest.mark.parametrize("n", [2, 3])
def test_torch_sequence_first_attention_is_one_segment(n):
    """torch's nn.MultiheadAttention as its exporter writes it at batch N (ViT): the sequence transposed to (L, N, C),
    the qkv projection, its parts taken with unsqueeze / transpose / squeeze / gather, heads merged with the batch,
    q and k scaled, the result merged to (L * N, C) rows, the output projection, transposed back: after the rewrite
    the attention is one op and the whole block one segment."""
    rng = np.random.default_rng(3)
    length, c, heads = 9, 12, 3
    d = c // heads
    wqkv, bqkv, wo, lw = rand(rng, 3 * c, c) * 0.4, rand(rng, 3 * c), rand(rng, c, c) * 0.4, rand(rng, c)
    root = np.float32((1 / np.sqrt(d)) ** 0.5)

    def fn(x):
        seq = F.transpose(F.flatten(x, 2), (0, 2, 1))  # (N, L, C)
        t = F.transpose(F.layer_norm(seq, lw), (1, 0, 2))  # (L, N, C)
        qkv = F.reshape(F.reshape(F.linear(t, wqkv, bqkv), (-1, n, 3, c)), (1, length, n, 3, c))
        parts = F.flatten(F.transpose(qkv, (3, 1, 2, 0, 4)), 2, 3)  # (3, L, N, C)
        q, k, v = (F.reshape(F.transpose(F.reshape(F.gather(parts, i, axis=0), (length, n * heads, d)), (1, 0, 2)),
                             (n, heads, length, d)) for i in range(3))
        scores = F.matmul(F.mul(q, root), F.mul(F.transpose(k, (0, 1, 3, 2)), root))
        mixed = F.reshape(F.transpose(F.matmul(F.softmax(scores, axis=3), v), (2, 0, 1, 3)), (length * n, c))
        out = F.transpose(F.reshape(F.linear(mixed, wo), (length, n, c)), (1, 0, 2))
        return F.add(seq, out)

    _, plan = check(fn, (n, c, 3, 3))
    kernels = [op[1] for op in plan.ops()]
    assert plan.eager_nodes == [] and kernels.count("attention") == 1 and len(plan._segments()) == 1, kernels


def test_assemblies_and_reductions_on_moved_values():
    """Gathers, slices, concatenations, padding, layer norm, reductions and softmax on the axes beside a moved
    batch follow it."""
    rng = np.random.default_rng(2)
    w = rand(rng, 6)

    def fn(x):  # (N, 4, 6)
        t = F.transpose(x, (1, 2, 0))  # (4, 6, N)
        t = F.concat([F.slice(t, [1], [3], [0]), F.gather(t, [0, 3], axis=0)], axis=0)  # (4, 6, N)
        t = F.pad(t, (1, 0, 0, 2, 0, 0))  # (5, 8, N)
        t = F.softmax(t, axis=1)
        u = F.transpose(t, (2, 0, 1))  # (N, 5, 8)
        r = F.reduce_sum(F.transpose(u, (1, 0, 2)), axes=[2], keepdims=True)  # (5, N, 1)
        return F.add(F.layer_norm(F.slice(u, [0], [6], [2]), w), F.transpose(r, (1, 0, 2)))

    check(fn, (2, 4, 6))


@pytest.mark.parametrize("case", ["softmax over the batch", "batch on the contracted axis", "digit split"])
def test_nodes_mixing_images_leave_the_graph_as_it_is(case):
    rng = np.random.default_rng(3)
    w = rand(rng, 5, 3)

    def fn(x):  # (N, 4, 3)
        if case == "softmax over the batch":
            return F.transpose(F.softmax(F.transpose(x, (1, 0, 2)), axis=1), (1, 0, 2))
        if case == "batch on the contracted axis":
            return F.transpose(F.linear(F.transpose(x, (1, 2, 0)), w[:, :2]), (2, 0, 1))
        return F.reshape(F.transpose(F.reshape(x, (2, -1)), (1, 0)), (-1, 4, 3))  # N = 4 split 2 x 2

    check(fn, (4, 4, 3) if case != "batch on the contracted axis" else (2, 4, 3), rewritten=False)


@settings(max_examples=25, deadline=None)
@given(perms=st.lists(st.permutations(range(4)), min_size=1, max_size=3), n=st.integers(2, 3),
       merge=st.booleans())
def test_random_transposes_and_reshapes(perms, n, merge):
    """Random transposes of a (N, 2, 3, 5) value, each followed by an elementwise op, a merge of the first two axes
    and back, then back to the batch first: the same values, the rewrite taken exactly when the batch left the
    first axis."""
    shape, orders = (n, 2, 3, 5), [list(range(4))]
    for perm in perms:
        orders.append([orders[-1][p] for p in perm])
    moved_shape = tuple(shape[i] for i in orders[-1])

    def fn(x):
        t = x
        for perm in perms:
            t = F.relu(F.transpose(t, tuple(perm)))
        if merge:
            merged = F.reshape(t, (moved_shape[0] * moved_shape[1], *moved_shape[2:]))
            t = F.reshape(F.add(merged, np.float32(1)), moved_shape)
        return F.transpose(t, tuple(int(i) for i in np.argsort(orders[-1])))

    graph = convcore.trace(fn, shape)
    result = batch_first(graph)
    x = rand(np.random.default_rng(4), *shape)
    np.testing.assert_array_equal(result.run(x), graph.run(x))
    assert (result is not graph) == any(order[0] != 0 for order in orders[1:])
    if result is not graph:
        assert leads_with_batch(result)


def test_torchvision_vit_at_batch_3_is_one_segment():
    """A small torchvision VisionTransformer exported by torch.onnx.export (dynamic batch): loaded at batch 3, its
    nn.MultiheadAttention blocks run sequence-first; compiled, each becomes one attention op and the whole network
    one segment; Plan, eager graph, onnxruntime and torch agree."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    ort = pytest.importorskip("onnxruntime")
    import io

    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                              num_classes=7).eval()
    buffer = io.BytesIO()
    x = torch.randn(3, 3, 16, 16)
    torch.onnx.export(model, (x[:1],), buffer, dynamo=False, opset_version=17, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(x).numpy()
    xb = x.numpy()
    net = convcore.onnx.load(buffer.getvalue(), input_shape=xb.shape)
    assert not leads_with_batch(net.graph)  # sequence-first inside
    plan = convcore.compile(net, xb.shape)
    got = plan(xb)
    assert_close(got, session.run(None, {"x": xb})[0], 1e-4)
    assert_close(got, expected, 1e-4)
    assert_close(got, net(xb), 1e-4)
    assert [op[1] for op in plan.ops()].count("attention") == 2
    assert plan.eager_nodes == [] and len(plan._segments()) == 1
