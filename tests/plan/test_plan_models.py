"""Compiled plans of the whole zoo and of imported ONNX models match eager `model(x)`.

Every registered model, with random weights and random batch-norm statistics (fresh ones are identity maps, which
would hide a wrong fold), at a small input: the Plan at batch 1 and 3 against eager within max|err| <= 1e-4 of
max|y| (docs/plan.md), with all fusions, with none, and with Winograd on every eligible layer.
"""

import numpy as np
import pytest

import convcore
import convcore.onnx
from convcore import models

# Inputs small enough to keep the run short, large enough for every stride of the architecture.
_SIZE = {"lenet5": 32, "amoebanet": 64, "alexnet": 64, "googlenet": 64}


def _randomize(model, gain=1.0, seed=0):
    """Random weights (variance gain / fan_in) and batch-norm statistics and affine parameters (in place)."""
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    for key, value in state.items():
        if value.ndim >= 2:
            fan_in = int(np.prod(value.shape[1:]))
            value[...] = rng.standard_normal(value.shape) * np.sqrt(gain / fan_in)
        elif key.endswith("running_mean"):
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
        elif key.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif key.endswith("weight") and value.ndim == 1:
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        elif key.endswith("bias") and value.ndim == 1:
            value[...] = rng.uniform(-0.5, 0.5, value.shape)
    return model


def _close(got, want, bound):
    err = float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())
    assert err <= bound, f"max|err| / max|y| = {err:.2e} > {bound}"
    return err


def _gain(name):
    """A weight scale that keeps the random network well conditioned. Measured over the zoo: with gain 1 the
    squeeze-excitation gates of the EfficientNets / MNASNets / MobileNets close and their outputs stop depending on
    the input; with gain 1.6 the deep SE-ResNets become chaotic (two computations exact to float rounding then
    differ by ~1e-4, as eager's own SIMD and float64-accumulating paths do)."""
    return 1.6 if name.startswith(("efficientnet", "mnasnet", "mobilenet")) else 1.0


@pytest.mark.parametrize("name", models.list_models())
def test_zoo_plan_matches_eager(name):
    info = models.get_model_info(name)
    c, size = info.input_size[0], _SIZE.get(name, 48)
    model = _randomize(models.get_model(name), _gain(name)).eval()
    x = np.random.default_rng(1).standard_normal((3, c, size, size)).astype(np.float32)
    want = model(x)
    assert np.abs(want - want[:1]).max() > 1e-5 * np.abs(want).max()  # the outputs depend on the input
    plan = convcore.compile(model, (1, c, size, size))
    _close(plan(x), want, 1e-4)
    _close(plan(x[:1]), want[:1], 1e-4)
    _close(convcore.compile(model, (3, c, size, size), fuse=False, winograd=False)(x), want, 1e-4)
    _close(convcore.compile(model, (1, c, size, size), winograd=True)(x), want, 1e-3)


@pytest.mark.parametrize("fusion", sorted(convcore.plan.FUSIONS))
def test_each_fusion_alone(fusion):
    model = _randomize(models.get_model("densenet121")).eval()  # BN before convs, concats, ReLUs
    x = np.random.default_rng(2).standard_normal((2, 3, 40, 40)).astype(np.float32)
    want = model(x)
    _close(convcore.compile(model, x.shape, fuse={fusion})(x), want, 1e-4)
    _close(convcore.compile(model, x.shape, fuse=set(convcore.plan.FUSIONS) - {fusion})(x), want, 1e-4)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0", "googlenet"])
def test_imported_onnx_plan_matches_eager(tmp_path, name):
    model = _randomize(models.get_model(name), _gain(name)).eval()
    path = tmp_path / f"{name}.onnx"
    convcore.onnx.export(model, path, input_shape=(1, 3, 64, 64))
    imported = convcore.onnx.load(path)
    x = np.random.default_rng(3).standard_normal((3, 3, 64, 64)).astype(np.float32)
    want = imported(x)
    _close(model(x), want, 1e-5)
    plan = convcore.compile(imported)  # the shape comes from the file
    _close(plan(x), want, 1e-4)
    _close(convcore.compile(str(path))(x), want, 1e-4)
    if name == "efficientnet_b0":  # SiLU exported as Sigmoid * x comes back fused into the convolutions
        assert not any("sigmoid" in op[1] and "silu" not in op[1] for op in plan.ops() if "conv" in op[1])
