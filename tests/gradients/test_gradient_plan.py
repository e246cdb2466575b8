"""The one-Plan gradient step (`convcore.gradients.plan`): forward and backward in one compiled Plan.

Random graphs covering every op it lowers (strided, dilated, grouped, depthwise and few-channel convolutions; each
activation, with the ReLU / ReLU6 masks fused into the convolution, interleave, col2im and max-pool ops; max and
average pooling with padding and ceil_mode windows; concat, add, mul gates and constants; flatten + linear; unfolded
batch norm) against the node-by-node program (the declared rules, each tested against torch and finite differences
in test_op_gradients.py), on every ISA at 1 and 2 threads; whole models, objectives, intermediate `wrt` values and
kept activations against torch.autograd; and the plan's own kernels against their references."""

import os
import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import convcore
from convcore import _core
from convcore.gradients import GradientProgram, channel, guided_rules, layer, logit, neuron
from convcore.graph import Graph

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models"))

import reference.activation as RA  # noqa: E402


class Builder:
    """A small random graph, built node by node."""

    def __init__(self, shape, seed):
        self.g = Graph(name="case")
        self.g.add_input("x", shape)
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def param(self, *shape, scale=0.5):
        name = f"p{len(self.g.params)}"
        self.g.add_param(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))
        return name

    def op(self, op, inputs, **attrs):
        self.count += 1
        name = f"{op}{self.count}"
        self.g.add_node(op, name, list(inputs), name, attrs)
        return name

    def conv(self, x, k, r=3, stride=1, padding=1, dilation=1, groups=1, bias=True):
        c = self.g.shapes[x][1]
        inputs = [x, self.param(k, c // groups, r, r, scale=1.0 / np.sqrt(c // groups * r * r))]
        if bias:
            inputs.append(self.param(k))
        return self.op("conv2d", inputs, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def finish(self, y):
        """Multiply by a random constant and objective 'layer': a seed different at every position."""
        shape = (1, *self.g.shapes[y][1:])
        y = self.op("mul", [y, self.param(*shape, scale=1.0)])
        self.g.outputs = [y]
        return self.g, y


def case_convs(seed):
    """Strided, dilated, grouped, depthwise, few-channel and 1x1 strided convolutions with clamp masks."""
    b = Builder((2, 3, 15, 13), seed)
    y = b.op("relu", [b.conv("x", 16, r=7, stride=2, padding=3)])               # col2im, mask from a ReLU
    y = b.op("relu6", [b.conv(y, 16, r=3, stride=1, padding=2, dilation=2, groups=2)])
    z = b.op("relu", [b.conv(y, 16, r=3, stride=3, padding=(1, 0, 2, 1))])      # phases, interleave, mask
    z = b.op("leaky_relu", [b.conv(z, 16, r=3, stride=2, padding=1, groups=16)], negative_slope=0.1)  # depthwise
    w = b.conv(y, 16, r=1, stride=2, padding=0, bias=False)                      # 1x1 strided: zero phases
    w = b.op("relu", [b.op("max_pool2d", [w], kernel_size=3, stride=2, padding=1)])
    s = b.op("add", [b.op("adaptive_avg_pool2d", [z], output_size=1), b.op("global_avg_pool2d", [w])])
    return b.finish(b.op("add", [b.conv(y, 16, r=1, padding=0), s]))


def case_pools(seed):
    """Max pooling (padding, dilation, ceil_mode), average pooling (count_include_pad both ways, ceil_mode)."""
    b = Builder((2, 5, 17, 14), seed)
    y = b.op("relu", [b.conv("x", 24)])
    m = b.op("max_pool2d", [y], kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)
    m2 = b.op("max_pool2d", [y], kernel_size=2, stride=3, padding=1, dilation=2)
    a = b.op("avg_pool2d", [y], kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    a2 = b.op("avg_pool2d", [y], kernel_size=3, stride=3, padding=1, count_include_pad=True)
    y = b.op("concat", [m, a], axis=1)
    y = b.op("relu", [b.conv(y, 16, r=1, padding=0)])
    z = b.op("concat", [m2, a2], axis=1)
    return b.finish(b.op("add", [b.op("global_avg_pool2d", [y]), b.op("global_avg_pool2d", [b.conv(z, 16, r=1,
                                                                                                    padding=0)])]))


def case_gates(seed):
    """Concat views read by several ops, squeeze-excitation, every smooth activation, x * x."""
    b = Builder((2, 4, 9, 11), seed)
    y = b.op("silu", [b.conv("x", 12)])
    t = b.op("tanh", [b.conv(y, 12)])
    h = b.op("hardswish", [b.conv(y, 12, r=1, padding=0)])
    cat = b.op("concat", [y, t, h], axis=1)
    gate = b.op("sigmoid", [b.conv(b.op("global_avg_pool2d", [cat]), 36, r=1, padding=0)])
    y = b.op("mul", [cat, gate])
    y = b.op("hardsigmoid", [b.conv(y, 12)])
    y = b.op("add", [b.op("mul", [y, y]), t])
    return b.finish(b.op("add", [y, b.op("relu", [h])]))


def case_dense(seed):
    """Unfolded batch norm, flatten of a map + linear, linear + ReLU + linear."""
    b = Builder((3, 6, 7, 6), seed)
    y = b.op("relu", [b.conv("x", 8, stride=2)])
    c = b.g.shapes[y][1]
    y = b.op("batch_norm", [y, b.param(c), b.param(c, scale=0.1), b.param(c), b.param(c)], eps=1e-5)
    b.g.params[b.g.nodes[-1].inputs[2]] = np.abs(b.g.params[b.g.nodes[-1].inputs[2]]) + 0.5  # variance > 0
    f = b.op("flatten", [y])
    k = b.g.shapes[f][1]
    y = b.op("relu", [b.op("linear", [f, b.param(20, k, scale=0.3), b.param(20)])])
    y = b.op("linear", [y, b.param(10, 20, scale=0.3)])
    return b.finish(y)


CASES = {"convs": case_convs, "pools": case_pools, "gates": case_gates, "dense": case_dense}


def _programs(graph, out, objective="layer", **kwargs):
    one = GradientProgram(graph, None, objective.replace("layer", out) if isinstance(objective, str) else objective,
                          fold=False, **kwargs)
    ref = GradientProgram(graph, None, objective.replace("layer", out) if isinstance(objective, str) else objective,
                          fold=False, forward="eager", **kwargs)
    return one, ref


def assert_grad_close(ours, reference, rel=1e-5):
    scale = float(np.abs(reference).max())
    assert scale > 0
    err = float(np.abs(ours.astype(np.float64) - reference).max())
    assert err <= rel * scale, f"max|err| = {err:.3e} > {rel} * max|grad| = {rel * scale:.3e}"


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_one_plan_matches_the_node_by_node_rules(name, seed, isa, threads):
    graph, out = CASES[name](seed)
    one, ref = _programs(graph, out)
    assert one.one_plan and not ref.one_plan
    x = np.random.default_rng(seed + 10).standard_normal(graph.shapes["x"]).astype(np.float32)
    got, want = one(x), ref(x)
    assert abs(got.value - want.value) <= 1e-5 * max(1.0, abs(want.value))
    assert_grad_close(got.grads["x"], want.grads["x"])
    again = one(x[:1])  # another batch size: the Plan plans its arena again
    assert_grad_close(again.grads["x"], ref(x[:1]).grads["x"])


@pytest.mark.parametrize("case", sorted(RA.CASES))
def test_every_activation_in_the_one_plan_gradient(case, isa, threads):
    """Each activation of reference.activation.CASES after a dense, a depthwise and a 1x1 convolution, an add and a
    multiply by a constant: one gradient Plan, equal to the node-by-node rules (each tested against torch)."""
    c = RA.CASES[case]
    b = Builder((2, 4, 7, 6), 7)
    if c.positive:  # positive inputs, weights and biases keep log / sqrt / reciprocal in their domain
        b.param = lambda *shape, scale=0.5: _abs_param(b, shape, scale)
    acts = [b.op(c.op, [y], **c.attrs) for y in (b.conv("x", 8), b.conv("x", 4, groups=4),
                                                  b.op("add", [b.conv("x", 8, r=1, padding=0), b.conv("x", 8)]),
                                                  b.op("mul", [b.conv("x", 8), b.param(1, 8, 1, 1)]))]
    graph, out = b.finish(b.op("concat", acts, axis=1))
    one, ref = _programs(graph, out)
    assert one.one_plan
    x = c.domain(np.random.default_rng(2).standard_normal(graph.shapes["x"]).astype(np.float32))
    got, want = one(x), ref(x)
    assert abs(got.value - want.value) <= 1e-5 * max(1.0, abs(want.value))
    assert_grad_close(got.grads["x"], want.grads["x"])


def _abs_param(b, shape, scale):
    name = f"p{len(b.g.params)}"
    b.g.add_param(name, (np.abs(b.rng.standard_normal(shape)) * scale + 0.01).astype(np.float32))
    return name


@st.composite
def conv_geometry(draw):
    """A convolution with its ReLU input: any kernel, stride (also larger than the kernel), dilation, asymmetric
    padding (also a kernel larger than the input), groups (depthwise with a multiplier too), 1 to 20 input channels
    (col2im below 16), odd sizes, batch 1-3."""
    groups = draw(st.sampled_from([1, 1, 2, 3, "dw"]))
    cg = 1 if groups == "dw" else draw(st.integers(1, 8))
    c = draw(st.integers(1, 20)) if groups == "dw" else cg * groups
    groups = c if groups == "dw" else groups
    k = groups * draw(st.integers(1, 3))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    assume(h + pads[0] + pads[1] >= dilation[0] * (r - 1) + 1 and w + pads[2] + pads[3] >= dilation[1] * (s - 1) + 1)
    return dict(n=draw(st.integers(1, 3)), c=c, k=k, r=r, s=s, stride=stride, dilation=dilation, padding=pads,
                groups=groups, h=h, w=w, seed=draw(st.integers(0, 2**16)))


@given(conv_geometry())
def test_one_plan_convolution_gradients_on_random_geometry(g):
    b = Builder((g["n"], g["c"], g["h"], g["w"]), g["seed"])
    y = b.op("relu", [b.conv("x", g["c"], r=1, padding=0)])  # the gradient of y is masked by the transposed conv
    weight = b.param(g["k"], g["c"] // g["groups"], g["r"], g["s"])
    y = b.op("conv2d", [y, weight], stride=g["stride"], padding=g["padding"], dilation=g["dilation"],
             groups=g["groups"])
    graph, out = b.finish(b.op("relu6", [y]))
    one, ref = _programs(graph, out)
    assert one.one_plan
    x = np.random.default_rng(g["seed"]).standard_normal(graph.shapes["x"]).astype(np.float32)
    want = ref(x).grads["x"]
    got = one(x).grads["x"]
    if np.abs(want).max() == 0:
        assert np.abs(got).max() == 0
    else:
        assert_grad_close(got, want)


@st.composite
def pool_geometry(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    pads = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 40)), h=draw(st.integers(max(kernel[0], 2), 10)),
                w=draw(st.integers(max(kernel[1], 2), 10)), kernel=kernel, stride=(draw(st.integers(1, 4)),
                draw(st.integers(1, 4))), padding=pads, ceil_mode=draw(st.booleans()),
                count_include_pad=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@given(pool_geometry())
def test_one_plan_pooling_gradients_on_random_geometry(g):
    b = Builder((g["n"], g["c"], g["h"], g["w"]), g["seed"])
    y = b.op("relu", [b.conv("x", g["c"], r=1, padding=0)])  # ties at 0 and the mask in max_pool_grad
    m = b.op("max_pool2d", [y], kernel_size=g["kernel"], stride=g["stride"], padding=g["padding"],
             ceil_mode=g["ceil_mode"])
    a = b.op("avg_pool2d", [y], kernel_size=g["kernel"], stride=g["stride"], padding=g["padding"],
             ceil_mode=g["ceil_mode"], count_include_pad=g["count_include_pad"])
    graph, out = b.finish(b.op("add", [m, a]))
    one, ref = _programs(graph, out)
    assert one.one_plan
    x = np.random.default_rng(g["seed"]).standard_normal(graph.shapes["x"]).astype(np.float32)
    want, got = ref(x).grads["x"], one(x).grads["x"]
    if np.abs(want).max() == 0:
        assert np.abs(got).max() == 0
    else:
        assert_grad_close(got, want)


def test_relu_masks_are_fused_into_the_ops_making_the_gradient():
    graph, out = case_convs(0)
    one, _ = _programs(graph, out)
    ops = one._step.builder.ops()
    masked = [kind for _, kind, detail, _ in ops if detail.endswith("+mask")]
    assert "interleave" in masked and any("_conv_" in k or k.endswith("dwconv") for k in masked), masked
    # Separate passes remain only for the leaky ReLU (not a clamp) and the ReLU whose gradient comes from a broadcast.
    assert sum("act_grad" in kind for _, kind, _, _ in ops) == 2


def test_objectives_wrt_and_kept_values():
    graph, out = case_gates(1)
    x = np.random.default_rng(5).standard_normal(graph.shapes["x"]).astype(np.float32)
    mid = [n.outputs[0] for n in graph.nodes if n.op == "concat"][0]
    objectives = [2 * channel(mid, 3) - 0.5 * layer(out) + neuron(mid, 5, 2, 3),
                  {f"{mid}:1": 1.5, f"{out}:4": -1.0}, neuron(out, 2, 1, 1, sample=1) + channel(mid, 7, sample=0)]
    for objective in objectives:
        one, ref = _programs(graph, out, objective, wrt=["x", mid], keep=[mid])
        assert one.one_plan
        got, want = one(x), ref(x)
        assert np.allclose(got.values, want.values, rtol=1e-5, atol=1e-6)
        for v in ("x", mid):
            assert_grad_close(got.grads[v], want.grads[v])
        np.testing.assert_allclose(got.activations[mid], want.activations[mid], rtol=1e-5, atol=1e-5)
    # Another objective over the same layers at call time.
    one, ref = _programs(graph, out, channel(mid, 2) + layer(out))
    other = 3 * channel(mid, 9) - layer(out)
    assert_grad_close(one(x, other).grads["x"], ref(x, other).grads["x"])


def test_graphs_the_plan_cannot_lower_run_node_by_node():
    b = Builder((1, 3, 8, 8), 0)
    y = b.op("adaptive_avg_pool2d", [b.op("relu", [b.conv("x", 8)])], output_size=3)  # 8 -> 3: unequal windows
    graph, out = b.finish(y)
    one, ref = _programs(graph, out)
    assert not one.one_plan
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert_grad_close(one(x).grads["x"], ref(x).grads["x"])
    custom = GradientProgram(graph, None, out, rules={"relu": one.rules["relu"]}, fold=False)
    assert not custom.one_plan  # the program's own rules: node by node
    with pytest.raises(ValueError, match="one Plan"):
        GradientProgram(graph, None, out, fold=False, forward="plan")


@pytest.mark.parametrize("case", ["convs", "pools", "gates"])
def test_guided_backprop_runs_as_one_plan(case, isa):
    """guided_rules(): dy clamped at 0 before every rectifying activation's backward, in the ops applying the ReLU
    masks (their epilogue) or in act_grad, as the node-by-node guided rules do."""
    graph, out = CASES[case](2)
    one = GradientProgram(graph, None, out, rules=guided_rules(), fold=False)
    ref = GradientProgram(graph, None, out, rules=guided_rules(), fold=False, forward="eager")
    assert one.one_plan and not ref.one_plan
    x = np.random.default_rng(4).standard_normal(graph.shapes["x"]).astype(np.float32)
    want, got = ref(x).grads["x"], one(x).grads["x"]
    plain = GradientProgram(graph, None, out, fold=False, forward="eager")(x).grads["x"]
    assert not np.allclose(want, plain, atol=1e-6)  # guiding changes this gradient: the test can fail
    assert_grad_close(got, want)


# --- whole models against torch ---------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from test_model_gradients import _hooked, assert_grad_close as assert_torch_close, pair, torch_input_grad  # noqa: E402

# Each lowers entirely (asserted); together they use every op the plan has a backward for. Not googlenet: its
# random-weight maps make max-pool near-ties that any compiled forward pass (this one or `convcore.compile`'s) may
# break otherwise than torch's (test_model_gradients.py runs it node by node).
MODELS = {"resnet18": 64, "mobilenet_v2": 64, "efficientnet_b0": 64, "densenet121": 64, "alexnet": 224,
          "resnext50_32x4d": 64}


@pytest.mark.parametrize("name, size", MODELS.items())
def test_zoo_one_plan_gradients_match_torch(name, size):
    reference, ours = pair(name)
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    expected_value, expected = torch_input_grad(reference, x, lambda y: y[:, 7].sum())
    program = GradientProgram(ours, x.shape, 7)
    assert program.one_plan
    result = program(x)
    assert abs(result.value - expected_value) <= 1e-4 * max(1.0, abs(expected_value))
    assert_torch_close(result.grads[program.wrt[0]], expected)


def test_one_plan_intermediate_layers_match_torch():
    reference, ours = pair("resnet18")
    names = ["layer1", "layer3.0.conv1", "maxpool"]
    acts = _hooked(reference, names)
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    out = reference(torch.tensor(x))
    for n in names:
        acts[n].retain_grad()
    (out[:, 11].sum() + 0.5 * acts["layer1"][:, 4].mean(dim=(1, 2)).sum()).backward()
    program = GradientProgram(ours, x.shape, logit(11) + 0.5 * channel("layer1", 4), wrt=names, keep=["layer1"])
    assert program.one_plan
    result = program(x)
    for n, v in zip(names, program.wrt):
        assert_torch_close(result.grads[v], acts[n].grad.numpy())
    np.testing.assert_allclose(result.activations["layer1"], acts["layer1"].detach().numpy(), rtol=1e-4,
                               atol=1e-4)


# --- the plan's gradient kernels ----------------------------------------------------------------------------------

def _plan_max_pool_grad(x, dy, k, s, d, pads, mask=None):
    p = _core.Plan(_core.get_isa())
    xi, gi = p.add_input(*x.shape[1:]), p.add_input(*dy.shape[1:])
    mi = p.add_input(*mask.shape[1:]) if mask is not None else -1
    p.add_output(p.max_pool_grad("mp", xi, gi, k, s, d, pads, mi, 0.0, float("inf")), True)
    out = np.empty_like(x)
    p.run([x, dy] + ([mask] if mask is not None else []), [out], _core.get_num_threads())
    return out


@pytest.mark.parametrize("seed", range(4))
def test_max_pool_grad_op_matches_the_eager_kernel(seed, isa, threads):
    """Ties, NaNs and -inf windows route as the eager kernel does; the mask zeroes what a ReLU stopped."""
    rng = np.random.default_rng(seed)
    c = int(rng.choice([3, 16, 37, 64]))
    x = rng.integers(-2, 3, (2, c, 11, 9)).astype(np.float32)  # many ties
    x[0, 0, 1, 1] = np.nan
    x[1, :, :3, :3] = -np.inf
    k, s, d, pads = (3, 3), (2, 1), (1, 2), (1, 1)
    oh, ow = (11 + 2 - 3) // 2 + 1, (9 + 2 - 5) // 1 + 1
    dy = rng.standard_normal((2, c, oh, ow)).astype(np.float32)
    want = np.empty_like(x)
    _core.max_pool2d_input_grad(x, dy, want, k, s, d, (1, 1, 1, 1))
    np.testing.assert_allclose(_plan_max_pool_grad(x, dy, k, s, d, pads), want, rtol=1e-6, atol=1e-6)
    mask = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(_plan_max_pool_grad(x, dy, k, s, d, pads, mask), np.where(mask > 0, want, 0),
                               rtol=1e-6, atol=1e-6)


def test_gradient_plan_ops_check_their_arguments():
    p = _core.Plan(_core.get_isa())
    a, b = p.add_input(4, 5, 5), p.add_input(3, 5, 5)
    relu = _core.Epilogue(act=_core.Act.relu)
    with pytest.raises(ValueError, match="5x5x4"):
        p.act_grad("g", a, b, relu)
    with pytest.raises(TypeError, match="epilogue"):
        p.act_grad("g", a, a, "relu")
    with pytest.raises(ValueError, match="does not fit"):
        p.interleave("i", 5, 5, 4, [[0, 0, 9, 0]], [[0, 0, 5, 0]], [a])
    with pytest.raises(ValueError, match="mask"):
        p.max_pool_grad("m", a, a, (1, 1), (1, 1), (1, 1), (0, 0), b, 0.0, 1.0)
    with pytest.raises(ValueError, match="R \\* S \\* C"):
        p.col2im("c", a, 9, 9, 3, (3, 3), (2, 2), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="mask"):
        p.conv("k", a, np.ones((3, 4, 1, 1), np.float32), None, spec=_core.ConvSpec(),
               epilogue=_core.Epilogue(mask_lo=0.0, mask_hi=1.0), mask=a)
    with pytest.raises(ValueError, match="unknown tensor"):
        p.avg_pool_grad("a", 99, 5, 5, (2, 2), (2, 2), (0, 0, 0, 0), False)


@pytest.mark.parametrize("k, groups, algo", [(40, 1, 1), (40, 1, 3), (37, 37, 2)])  # IGEMM, Winograd, depthwise
def test_conv_mask_epilogue_matches_the_reference_kernels(k, groups, algo, isa, threads):
    """conv + residual + mask against the scalar reference plan."""
    rng = np.random.default_rng(7)
    c = 32 if groups == 1 else k
    x = rng.standard_normal((2, c, 12, 10)).astype(np.float32)
    w = (rng.standard_normal((k, c // groups, 3, 3)) * 0.1).astype(np.float32)
    res = rng.standard_normal((2, k, 12, 10)).astype(np.float32)
    mask = rng.standard_normal((2, k, 12, 10)).astype(np.float32)
    outs = {}
    for kernels in (isa, "scalar"):
        p = _core.Plan(kernels)
        xi, ri, mi = p.add_input(c, 12, 10), p.add_input(k, 12, 10), p.add_input(k, 12, 10)
        y = p.conv("c", xi, w, None, spec=_core.ConvSpec(padding=(1, 1, 1, 1), groups=groups),
                   epilogue=_core.Epilogue(mask_lo=-0.5, mask_hi=1.0), residual=ri,
                   algo=_core.ConvAlgo(algo if kernels != "scalar" or algo != 3 else 1), mask=mi)
        assert p.ops()[-1][2].endswith("+mask") or algo == 3
        p.add_output(y, True)
        out = np.empty((2, k, 12, 10), np.float32)
        p.run([x, res, mask], [out], convcore.get_num_threads())
        outs[kernels] = out
    want = outs["scalar"]
    assert np.all(want[(mask <= -0.5) | (mask >= 1.0)] == 0) and np.any(want != 0)
    np.testing.assert_allclose(outs[isa], want, rtol=1e-4, atol=1e-4)
