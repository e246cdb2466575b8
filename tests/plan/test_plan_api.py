"""The Plan as a user meets it: arguments, bad input, pickling, threads, inspection."""

import pickle
import threading

import numpy as np
import pytest

import convcore
import convcore.functional as F
from convcore import models


@pytest.fixture(scope="module")
def resnet():
    model = models.get_model("resnet18").eval()
    return model, convcore.compile(model, (1, 3, 40, 40))


def _x(n=2, seed=0, shape=(3, 40, 40)):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


# (Another height or width is no error for a plan compiled from a model: tests/plan/test_plan_sizes.py.)
@pytest.mark.parametrize("x, error, words", [
    (np.zeros((1, 4, 40, 40), np.float32), ValueError, "(N, 3, 40, 40)"),
    (np.zeros((1, 4, 40, 41), np.float32), ValueError, "(N, 3, 40, 40)"),
    (np.zeros((3, 40, 40), np.float32), ValueError, "(N, 3, 40, 40)"),
    (np.zeros((0, 3, 40, 40), np.float32), ValueError, "(N, 3, 40, 40)"),
    (np.zeros((1, 3, 40, 40), np.float64), TypeError, "float32"),
    ([[1.0]], TypeError, "numpy.ndarray"),
])
def test_bad_input_is_a_clear_error(resnet, x, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        resnet[1](x)


def test_bad_out(resnet):
    plan = resnet[1]
    with pytest.raises(ValueError, match=r"out\[0\]: expected a writeable C-contiguous float32 array of shape"):
        plan.run(_x(2), out=np.empty((2, 999), np.float32))
    with pytest.raises(ValueError, match="expected 1 array"):
        plan.run(_x(2), out=[np.empty((2, 1000), np.float32)] * 2)
    with pytest.raises(ValueError, match="writeable"):
        plan.run(_x(2), out=np.empty((2, 1000), np.float32)[:, ::-1])


@pytest.mark.parametrize("kwargs, error, words", [
    ({"winograd": "yes"}, ValueError, "winograd"),
    ({"fuse": {"nonsense"}}, ValueError, "fuse"),
    ({"num_threads": 0}, ValueError, "num_threads"),
    ({"num_threads": 1.5}, TypeError, "num_threads"),
])
def test_bad_compile_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        convcore.compile(models.get_model("lenet5"), (1, 1, 32, 32), **kwargs)


def test_compile_without_a_shape_uses_the_zoo_size_or_waits_for_the_first_call():
    deferred = convcore.compile(convcore.nn.Sequential(convcore.nn.Conv2d(3, 4, 3)))
    assert not deferred.compiled  # (tests/plan/test_plan_sizes.py runs it)
    with pytest.raises(TypeError, match="input_shape: required for a model without a registered input size"):
        convcore.trace(convcore.nn.Sequential(convcore.nn.Conv2d(3, 4, 3)))
    lenet = models.get_model("lenet5")
    assert convcore.compile(lenet).input_shape == (1, 1, 32, 32)  # batch 1 at its registered input size
    assert convcore.trace(lenet).shapes["input"] == (1, 1, 32, 32)
    with pytest.raises(ValueError, match=r"input_shape: expected \(N, C, H, W\) \(got \(1, 32, 32\), without the "
                                         r"batch\): e.g. \(1, 1, 32, 32\)"):
        convcore.compile(lenet, (1, 32, 32))
    with pytest.raises(TypeError, match="model"):
        convcore.compile(42, (1, 3, 8, 8))


def test_ops_plans_do_not_cover_run_eagerly_between_segments():
    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal((6, 3, 3, 3)).astype(np.float32), rng.standard_normal((4, 6, 1, 1)).astype(np.float32)

    def fn(x):
        h = F.relu(F.conv2d(x, w1, padding=1))
        s = F.softmax(h, axis=2)  # a softmax over a spatial axis: not a plan op
        return F.conv2d(F.mul(h, s), w2), F.log_softmax(s, axis=3)

    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    plan = convcore.compile(fn, (1, 3, 5, 7))
    assert plan.eager_nodes == ["softmax", "log_softmax"]
    want = convcore.trace(fn, (1, 3, 5, 7)).run(x)
    for got, ref in zip(plan(x), want):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    kinds = [op[1] for op in plan.ops()]
    assert "eager softmax" in kinds and any("conv" in k for k in kinds)
    assert len(plan.profile(x, repeats=1)) == len(kinds)


def test_pickled_plan_gives_the_same_results(resnet):
    model, plan = resnet
    x = _x(3)
    again = pickle.loads(pickle.dumps(plan))
    assert again.input_shape == plan.input_shape and again.isa == plan.isa
    np.testing.assert_array_equal(again(x), plan(x))


def test_threads_calling_one_plan_get_identical_results(resnet):
    _, plan = resnet
    inputs = [_x(n, seed=n) for n in (1, 2, 3, 1, 2, 3)]
    expected = [plan(x) for x in inputs]
    results, errors = [None] * 24, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = plan(inputs[i % 6])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, y in enumerate(results):
        np.testing.assert_array_equal(y, expected[i % 6])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(resnet, threads):
    model, _ = resnet
    x = _x(2)
    one = convcore.compile(model, (2, 3, 40, 40), num_threads=1)(x)
    np.testing.assert_allclose(convcore.compile(model, (2, 3, 40, 40), num_threads=threads)(x), one,
                               rtol=0, atol=1e-5 * np.abs(one).max())


def test_summary_and_memory(resnet, capsys):
    _, plan = resnet
    text = plan.summary(_x(1), repeats=2)
    assert "GFLOP" in text and "conv" in text and text == capsys.readouterr().out.strip()
    assert sum(op[3] for op in plan.ops()) > 1e8  # resnet18 at 40x40: ~0.1 GFLOP per image
    assert plan.memory_bytes > 0 and plan.weight_bytes > 4 * 11e6  # 11.7 M parameters, packed
    rows = plan.profile(repeats=1)
    assert len(rows) == len(plan.ops()) and all(r[4] >= 0 for r in rows)


def test_batch_sizes_reuse_their_arenas(resnet):
    _, plan = resnet
    for n in (4, 1, 4):
        plan(_x(n))
        assert plan.memory_bytes > 0
    plan(_x(1))
    small = plan.memory_bytes
    plan(_x(4))
    assert plan.memory_bytes > 3 * small


def test_denormal_weights_are_flushed_only_inside_the_call():
    w = np.full((4, 3, 1, 1), 1e-40, np.float32)  # subnormal
    plan = convcore.compile(lambda x: F.conv2d(x, w), (1, 3, 4, 4))
    y = plan(np.ones((1, 3, 4, 4), np.float32))
    assert np.all(y == 0)  # flushed to zero inside the plan (docs/plan.md)
    assert np.float32(1e-40) * np.float32(1.0) != 0  # the caller's floating-point mode is untouched


@pytest.mark.parametrize("threshold, split", [(1, True), (1 << 40, False), (0, False)])
def test_batches_whose_maps_outweigh_their_weights_run_image_by_image(threshold, split, monkeypatch):
    """A net of large maps and small weights (a text detector's shape) runs each segment one image per call where one
    image's share of the arena exceeds the weights and Plan.SPLIT_BYTES; results as in one call and as eager, with
    nodes outside the Plan between segments and several outputs."""
    rng = np.random.default_rng(5)
    w1, w2 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32), rng.standard_normal((4, 8, 1, 1)).astype(np.float32)

    def fn(x):
        y = F.relu(F.conv2d(x, w1, padding=1))
        z = F.lp_pool2d(y, 2, stride=2)  # outside the Plan: two segments
        return F.conv2d(y, w2), F.add(F.conv2d(z, w2), np.float32(1))

    monkeypatch.setattr(convcore.Plan, "SPLIT_BYTES", threshold)
    plan = convcore.compile(fn, (3, 3, 24, 24))
    x = _x(3, shape=(3, 24, 24))
    got, expected = plan(x), fn(x)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    segments = plan._segments()
    assert len(segments) == 2 and plan.eager_nodes
    assert segments[0].split.get(3, False) == split  # (the second's arena, its 12 x 12 map, holds no more)
    assert all(s.split.get(1) is None for s in segments)  # a batch of one is never split
    plan(x[:1])
    assert all(1 not in s.split for s in segments)
