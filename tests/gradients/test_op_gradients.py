"""Every op's input gradient (its declared backward rule) against a float64 finite-difference reference of the
float64 oracles in tests/reference, and against torch.autograd in float64, on random shapes: every padding form,
strides, dilations, groups (depthwise with multipliers), ceil_mode windows, count_include_pad. The C++ backward
kernels against their plain references on every ISA at 1 and 2 threads."""

import numpy as np
import pytest

import reference.activation as RA
import reference.conv as RC
import reference.misc as RM
import reference.norm as RN
import reference.pool as RP
from reference import assert_close

import convcore
from convcore import _core
from convcore.ops import OPS, BackwardCall

torch = pytest.importorskip("torch")
TF = torch.nn.functional


# --- the harness ------------------------------------------------------------------------------------------------

def rule_grads(name, arrays, attrs, params=(), variadic=False):
    """Run op `name` forward and its backward rule as the gradient program does: only the saved forward values and
    the parameters (input names in `params`) are handed to the rule. Returns (dy, {input index: gradient})."""
    op = OPS[name]
    if variadic:
        shapes = [a.shape for a in arrays]
        attrs_n, _ = op.infer(shapes, attrs)
        y = op.function(list(arrays), **attrs)
        names = [op.inputs[0]] * len(arrays)
    else:
        arrays = list(arrays) + [None] * (len(op.inputs) - len(arrays))  # as graph nodes list absent inputs
        shapes = [None if a is None else a.shape for a in arrays]
        attrs_n, _ = op.infer(shapes, attrs)
        y = op.function(*arrays, **attrs)
        names = list(op.inputs)
    needs = [a is not None and n not in params for a, n in zip(arrays, names)]
    by_name = {op.inputs[0]: any(needs)} if variadic else dict(zip(names, needs))
    saved = op.backward.saved(attrs_n, by_name)
    inputs = [a if (n in saved or n in params) else None for a, n in zip(arrays, names)]
    dy = np.random.default_rng(99).standard_normal(y.shape).astype(np.float32)
    call = BackwardCall(inputs, shapes, y if "out" in saved else None, attrs_n, needs)
    grads = op.backward.rule(dy, call)
    assert len(grads) == len(arrays), (len(grads), len(arrays))
    out = {}
    for i, (g, need) in enumerate(zip(grads, needs)):
        if need:
            assert g is not None and g.shape == arrays[i].shape and g.dtype == np.float32, (i, g)
            out[i] = np.asarray(g)
    return dy, out


def finite_differences(fn, arrays, index, dy, eps=1e-6):
    """d sum(dy * fn(*arrays)) / d arrays[index], by central differences in float64, element by element."""
    args = [None if a is None else np.asarray(a, np.float64) for a in arrays]
    x = args[index]
    grad = np.zeros_like(x)
    flat, g = x.reshape(-1), grad.reshape(-1)
    dy = np.asarray(dy, np.float64)
    for k in range(flat.size):
        keep = flat[k]
        flat[k] = keep + eps
        up = (dy * fn(*args)).sum()
        flat[k] = keep - eps
        down = (dy * fn(*args)).sum()
        flat[k] = keep
        g[k] = (up - down) / (2 * eps)
    return grad


def torch_grads(fn, arrays, dy, indices):
    tensors = [None if a is None else torch.tensor(np.asarray(a, np.float64), requires_grad=i in indices)
               for i, a in enumerate(arrays)]
    out = fn(*tensors)
    out.backward(torch.from_numpy(np.asarray(dy, np.float64)))
    return {i: tensors[i].grad.numpy() for i in indices}


def check(name, arrays, attrs, ref_fn, torch_fn, params=(), bound=1e-5, variadic=False, differences=True):
    """Gradients of `name` against finite differences of `ref_fn` (unless `differences` is False: a step function)
    and torch."""
    dy, ours = rule_grads(name, arrays, attrs, params, variadic)
    arrays = list(arrays)
    assert ours, "no gradient asked for"
    if variadic:
        def fd_fn(*xs):
            return ref_fn(list(xs))
    else:
        fd_fn = ref_fn
    for i, g in ours.items():
        if differences:
            assert_close(g, finite_differences(fd_fn, arrays, i, dy), bound)
    expected = torch_grads(torch_fn, arrays, dy, list(ours))
    for i, g in ours.items():
        assert_close(g, expected[i], bound)


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# --- convolutions -----------------------------------------------------------------------------------------------

def _conv_case(seed):
    """A random convolution: groups (depthwise with a multiplier too), strides, dilations, every padding form."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, kg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if seed % 4 == 0:  # depthwise, multiplier kg
            cg = 1
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        h, w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
        padding = [0, 1, (1, 2), (0, 2, 1, 0), (2, 1, 1, 3), "same", "valid", "full"][seed % 8]
        if padding == "same" and stride != (1, 1):
            padding = "same"  # convcore's 'same' with strides: output ceil(input / stride)
        top, bottom, left, right = RC.resolve_padding(padding, (h, w), (kh, kw), stride, dilation)
        if h + top + bottom < dilation[0] * (kh - 1) + 1 or w + left + right < dilation[1] * (kw - 1) + 1:
            continue
        x = rand(rng, int(rng.integers(1, 3)), cg * groups, h, w)
        weight = rand(rng, kg * groups, cg, kh, kw)
        return x, weight, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    raise AssertionError("no valid case drawn")


def _torch_conv(x, w, stride, padding, dilation, groups, in_hw):
    top, bottom, left, right = RC.resolve_padding(padding, in_hw, tuple(w.shape[2:]), stride, dilation)
    return TF.conv2d(TF.pad(x, (left, right, top, bottom)), w, stride=stride, dilation=dilation, groups=groups)


@pytest.mark.parametrize("seed", range(24))
def test_conv2d_input_gradient(seed, isa):
    x, weight, attrs = _conv_case(seed)
    check("conv2d", [x, weight], attrs, lambda a, w: RC.conv2d(a, w, **attrs),
          lambda a, w: _torch_conv(a, w, in_hw=x.shape[2:], **attrs), params=("weight",))


@pytest.mark.parametrize("seed", range(6))
def test_depthwise_and_separable_input_gradients(seed):
    rng = np.random.default_rng(seed)
    c, m = int(rng.integers(1, 5)), int(rng.integers(1, 3))
    x = rand(rng, 2, c, 7, 6)
    dw, pw = rand(rng, c * m, 1, 3, 3), rand(rng, 4, c * m, 1, 1)
    attrs = dict(stride=int(rng.integers(1, 3)), padding=["same", 1, (0, 1, 1, 0)][seed % 3], dilation=1)
    check("depthwise_conv2d", [x, dw], attrs, lambda a, w: RC.conv2d(a, w, groups=c, **attrs),
          lambda a, w: _torch_conv(a, w, groups=c, in_hw=x.shape[2:], **attrs), params=("weight",))
    check("separable_conv2d", [x, dw, pw], attrs,
          lambda a, w1, w2: RC.conv2d(RC.conv2d(a, w1, groups=c, **attrs), w2),
          lambda a, w1, w2: TF.conv2d(_torch_conv(a, w1, groups=c, in_hw=x.shape[2:], **attrs), w2),
          params=("depthwise_weight", "pointwise_weight"))


def test_conv2d_bias_gradient():
    rng = np.random.default_rng(0)
    x, w, b = rand(rng, 2, 3, 5, 5), rand(rng, 4, 3, 3, 3), rand(rng, 4)
    dy, ours = rule_grads("conv2d", [x, w, b], {"padding": 1}, params=("weight",))
    assert_close(ours[2], dy.astype(np.float64).sum(axis=(0, 2, 3)))


def test_weight_gradients_say_they_are_not_implemented():
    rng = np.random.default_rng(0)
    x, w = rand(rng, 1, 2, 4, 4), rand(rng, 3, 2, 3, 3)
    with pytest.raises(NotImplementedError, match="conv2d: the gradient of weight"):
        rule_grads("conv2d", [x, w], {})


@pytest.mark.parametrize("seed", range(40))
def test_conv_input_grad_kernel_matches_its_reference(seed, isa, threads):
    """The phase decomposition (on conv2d's SIMD kernels) against the float64 loop nest over dx."""
    rng = np.random.default_rng(1000 + seed)
    x, w, attrs = _conv_case(seed)
    if seed % 5 == 0:  # larger channel counts reach the GEMM and direct paths, not only the small-shape ones
        x = rand(rng, 1, 24 * attrs["groups"], 11, 9)
        w = rand(rng, 40 * attrs["groups"], 24, *w.shape[2:])
    op = OPS["conv2d"]
    a, shape = op.infer([x.shape, w.shape, None], attrs)
    dy = rand(rng, *shape)
    got, ref = np.full(x.shape, np.nan, np.float32), np.full(x.shape, np.nan, np.float32)
    args = (a["stride"], a["dilation"], a["padding"], a["groups"])
    _core.conv2d_input_grad(dy, w, None, got, *args)
    _core.conv2d_input_grad_ref(dy, w, ref, *args)
    assert_close(got, ref)
    wt = np.empty_like(w)
    _core.conv2d_input_grad_weights(w, wt, a["stride"], a["dilation"], a["groups"])
    again = np.empty_like(got)
    _core.conv2d_input_grad(dy, w, wt, again, *args)
    np.testing.assert_array_equal(again, got)


@pytest.mark.parametrize("h, w, k, stride, dilation, padding", [
    (9, 3, (4, 1), (4, 1), (3, 1), (0, 1, 0, 0)),   # phase 1 reads no dy row; phase 0 had already written
    (3, 9, (1, 4), (1, 4), (1, 3), (0, 0, 0, 1)),   # the same along W
    (7, 7, (3, 3), (3, 2), (2, 2), (0, 2, 1, 0)),
])
def test_conv_input_grad_phases_without_dy_rows_leave_the_others_intact(h, w, k, stride, dilation, padding, isa):
    """Regression: a phase none of whose dy rows survive the crop cleared dx after earlier phases had written it
    (found by the one-Plan gradient's hypothesis test). Against torch."""
    rng = np.random.default_rng(0)
    x, weight = rand(rng, 2, 3, h, w), rand(rng, 2, 3, *k)
    t, b, l, r = padding
    xt = torch.tensor(x, requires_grad=True)
    y = TF.conv2d(TF.pad(xt, (l, r, t, b)), torch.tensor(weight), stride=stride, dilation=dilation)
    dy = rand(rng, *y.shape)
    y.backward(torch.tensor(dy))
    dx = np.full(x.shape, np.nan, np.float32)
    _core.conv2d_input_grad(dy, weight, None, dx, stride, dilation, padding, 1)
    assert_close(dx, xt.grad.numpy())


# --- pooling ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(16))
def test_max_pool2d_input_gradient(seed, isa):
    rng = np.random.default_rng(seed)
    k = (int(rng.integers(1, 4)), int(rng.integers(2, 4)))
    dilation = (1, 1) if seed % 3 else (2, 1)
    extent = [dilation[i] * (k[i] - 1) + 1 for i in range(2)]
    padding = [0, (1, 0), (0, 1, 1, 0)][seed % 3]
    pads = RP._pool_pads(padding)
    if any(p > e // 2 for p, e in zip((pads[0], pads[1], pads[2], pads[3]), (extent[0], extent[0], extent[1],
                                                                                extent[1]))):
        padding = 0
    attrs = dict(kernel_size=k, stride=(int(rng.integers(1, 3)), int(rng.integers(1, 4))), padding=padding,
                 dilation=dilation, ceil_mode=bool(seed % 2))
    x = rand(rng, 2, 3, int(rng.integers(5, 9)), int(rng.integers(5, 10)))
    t, b, l, r = RP._pool_pads(padding)
    check("max_pool2d", [x], attrs, lambda a: RP.max_pool2d(a, **attrs),
          lambda a: TF.max_pool2d(TF.pad(a, (l, r, t, b), value=-np.inf), k, attrs["stride"], 0, dilation,
                                  ceil_mode=attrs["ceil_mode"]) if (t, b, l, r) != (t, t, l, l) else
          TF.max_pool2d(a, k, attrs["stride"], (t, l), dilation, ceil_mode=attrs["ceil_mode"]))


def test_max_pool2d_routes_ties_to_the_first_maximum():
    x = np.maximum(rand(np.random.default_rng(0), 2, 8, 9, 9), 0)  # many zeros: all-zero windows
    for k, s, p, ceil in [(3, 2, 0, True), (3, 1, 1, True), (2, 2, 0, False)]:
        dy, ours = rule_grads("max_pool2d", [x], dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil))
        expected = torch_grads(lambda a: TF.max_pool2d(a, k, s, p, ceil_mode=ceil), [x], dy, [0])
        assert_close(ours[0], expected[0], 1e-6)


@pytest.mark.parametrize("seed", range(16))
def test_avg_pool2d_input_gradient(seed, isa):
    rng = np.random.default_rng(seed)
    k = (int(rng.integers(1, 4)), int(rng.integers(2, 5)))
    padding = [(0, 0), (k[0] // 2, k[1] // 2), (0, k[0] // 2, k[1] // 2, 0)][seed % 3]
    attrs = dict(kernel_size=k, stride=(int(rng.integers(1, 3)), int(rng.integers(1, 4))), padding=padding,
                 ceil_mode=bool(seed % 2), count_include_pad=bool(seed % 4 < 2))
    x = rand(rng, 2, 3, int(rng.integers(4, 9)), int(rng.integers(5, 9)))
    t, b, l, r = RP._pool_pads(padding)

    def torch_fn(a):
        if (t, b, l, r) == (t, t, l, l):
            return TF.avg_pool2d(a, k, attrs["stride"], (t, l), attrs["ceil_mode"], attrs["count_include_pad"])
        return None

    if torch_fn(torch.zeros(x.shape, dtype=torch.float64)) is None:  # 4-sided padding: the oracle only
        dy, ours = rule_grads("avg_pool2d", [x], attrs)
        assert_close(ours[0], finite_differences(lambda a: RP.avg_pool2d(a, **attrs), [x], 0, dy))
        return
    check("avg_pool2d", [x], attrs, lambda a: RP.avg_pool2d(a, **attrs), torch_fn)


@pytest.mark.parametrize("out", [1, 2, 3, (2, 4), (5, 3)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool_input_gradients(out, kind):
    x = rand(np.random.default_rng(3), 2, 3, 7, 6)
    ref = RP.adaptive_avg_pool2d if kind == "avg" else RP.adaptive_max_pool2d
    tfn = TF.adaptive_avg_pool2d if kind == "avg" else TF.adaptive_max_pool2d
    check(f"adaptive_{kind}_pool2d", [x], {"output_size": out}, lambda a: ref(a, out), lambda a: tfn(a, out))


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pool_input_gradients(kind):
    x = rand(np.random.default_rng(4), 2, 5, 4, 7)
    ref = RP.global_avg_pool2d if kind == "avg" else RP.global_max_pool2d
    tfn = (lambda a: a.mean(dim=(2, 3), keepdim=True)) if kind == "avg" else (lambda a: a.amax(dim=(2, 3),
                                                                                                keepdim=True))
    check(f"global_{kind}_pool2d", [x], {}, ref, tfn)


# --- normalization, activations, softmax ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3), (2, 4, 5), (2, 3, 4, 5), (1, 2, 3, 2, 2)])
def test_batch_norm_input_gradient(shape):
    rng = np.random.default_rng(len(shape))
    c = shape[1]
    x, mean, var = rand(rng, *shape), rand(rng, c), (rng.random(c) + 0.5).astype(np.float32)
    weight, bias = rand(rng, c), rand(rng, c)
    check("batch_norm", [x, mean, var, weight, bias], {"eps": 1e-3},
          lambda a, m, v, w, b: RN.batch_norm(a, m, v, w, b, 1e-3),
          lambda a, m, v, w, b: TF.batch_norm(a, m, v, w, b, False, 0.0, 1e-3),
          params=("running_mean", "running_var", "weight", "bias"))


@pytest.mark.parametrize("size", [1, 2, 3, 5])
@pytest.mark.parametrize("shape", [(2, 7, 3), (2, 6, 3, 4)])
def test_local_response_norm_input_gradient(size, shape):
    x = rand(np.random.default_rng(size), *shape)
    attrs = dict(size=size, alpha=0.3, beta=0.75, k=1.5)
    check("local_response_norm", [x], attrs, lambda a: RN.local_response_norm(a, **attrs),
          lambda a: TF.local_response_norm(a, **attrs))


@pytest.mark.parametrize("case", sorted(RA.CASES))
def test_activation_input_gradients(case, isa):
    c = RA.CASES[case]
    x = c.inputs(np.random.default_rng(5), 2, 3, 5, 7)
    check(c.op, [x], c.attrs, c.oracle, lambda a: c.torch(torch, a), differences=not c.straight_through)


@pytest.mark.parametrize("case", sorted(RA.CASES))
def test_activation_gradient_kernels_match_their_reference(case, isa, threads):
    c = RA.CASES[case]
    v, dy = c.inputs(np.random.default_rng(6), 300_001), rand(np.random.default_rng(7), 300_001)
    op = OPS[c.op]
    act, alpha, beta = op.plan.epilogue(op.infer([v.shape], c.attrs)[0])
    got, ref = np.empty_like(dy), np.empty_like(dy)
    _core.unary_input_grad(v, dy, got, _core.Act.__members__[act], alpha, beta)
    _core.unary_input_grad(v, dy, ref, _core.Act.__members__[act], alpha, beta, reference=True)
    assert_close(got, ref, 1e-6)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_input_gradients(name, axis):
    x = rand(np.random.default_rng(axis), 3, 4, 5, scale=3.0)
    ref = RA.softmax if name == "softmax" else RA.log_softmax
    tfn = TF.softmax if name == "softmax" else TF.log_softmax
    check(name, [x], {"axis": axis}, lambda a: ref(a, axis), lambda a: tfn(a, dim=axis))


# --- dense and structural ops -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5,), (3, 6), (2, 3, 6)])
def test_linear_input_gradient(shape):
    rng = np.random.default_rng(len(shape))
    x, w, b = rand(rng, *shape), rand(rng, 4, shape[-1]), rand(rng, 4)
    check("linear", [x, w, b], {}, RM.linear, TF.linear, params=("weight", "bias"))


def test_linear_weight_and_bias_gradients():
    """The rule already gives the weight and bias gradients when asked (the design's place for them)."""
    rng = np.random.default_rng(0)
    x, w, b = rand(rng, 3, 6), rand(rng, 4, 6), rand(rng, 4)
    check("linear", [x, w, b], {}, RM.linear, TF.linear)


@pytest.mark.parametrize("shapes", [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (2, 3, 1, 1)),
                                    ((1, 3, 1, 5), (2, 1, 4, 1)), ((2, 3, 4), (4,)), ((3,), (2, 3))])
@pytest.mark.parametrize("name", ["add", "mul"])
def test_broadcasting_add_and_mul_gradients(name, shapes):
    rng = np.random.default_rng(7)
    a, b = rand(rng, *shapes[0]), rand(rng, *shapes[1])
    fn = (lambda p, q: p + q) if name == "add" else (lambda p, q: p * q)
    check(name, [a, b], {}, RM.add if name == "add" else RM.mul, fn)


@pytest.mark.parametrize("axis", [0, 1, 3])
def test_concat_gradient(axis):
    rng = np.random.default_rng(axis)
    shapes = [[2, 3, 4, 5] for _ in range(3)]
    for s, extra in zip(shapes, (1, 2, 3)):
        s[axis] = extra
    xs = [rand(rng, *s) for s in shapes]
    check("concat", xs, {"axis": axis}, lambda items: RM.concat(items, axis),
          lambda *items: torch.cat(items, dim=axis), variadic=True)


@pytest.mark.parametrize("dims", [(1, -1), (0, 2), (2, 3)])
def test_flatten_gradient(dims):
    x = rand(np.random.default_rng(8), 2, 3, 4, 5)
    check("flatten", [x], {"start_dim": dims[0], "end_dim": dims[1]}, lambda a: RM.flatten(a, *dims),
          lambda a: torch.flatten(a, *dims))


# --- coverage ---------------------------------------------------------------------------------------------------

TESTED = {"conv2d", "depthwise_conv2d", "separable_conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
          "adaptive_max_pool2d", "global_avg_pool2d", "global_max_pool2d", "batch_norm", "local_response_norm",
          "softmax", "log_softmax", "linear", "add", "mul", "concat", "flatten",
          *(case.op for case in RA.CASES.values())}


def test_every_backward_rule_is_tested_here():
    with_rules = {name for name, op in OPS.items() if op.backward is not None}
    assert with_rules <= TESTED, f"add gradient tests for {sorted(with_rules - TESTED)}"


def test_every_op_of_the_zoo_has_a_backward_rule():
    from convcore import models

    used = set()
    for name in models.list_models():
        info = models.get_model_info(name)
        size = info.input_size[-1] if name == "lenet5" else max(info.min_size, 32)
        try:
            graph = convcore.trace(models.get_model(name), (1, info.input_size[0], size, size))
        except ValueError:
            graph = convcore.trace(models.get_model(name), (1, *info.input_size))
        used |= {node.op for node in graph.nodes}
    missing = sorted(op for op in used if OPS[op].backward is None)
    assert not missing, f"ops of the zoo without a backward rule: {missing}"
