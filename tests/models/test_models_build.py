"""Every model builds, runs at batch 1 and 4, and gives (N, num_classes) logits that do not depend on the batch."""

import numpy as np
import pytest
from model_helpers import random_input

from convcore import models  # noqa: E402

slow = pytest.mark.slow

# (name, builder options, input H = W); one model of each family runs by default
_DEFAULT = [
    ("lenet5", {}, 32),
    ("lenet5", {"activation": "tanh", "pooling": "avg"}, 32),
    ("alexnet", {}, 63),
    ("vgg11", {}, 32),
    ("googlenet", {}, 32),
    ("resnet18", {}, 32),
    ("preact_resnet18", {}, 32),
    ("se_resnet50", {}, 32),
    ("densenet121", {}, 32),
    ("mobilenet_v2", {}, 32),
    ("mnasnet0_5", {}, 32),
    ("efficientnet_b0", {}, 32),
    ("efficientnet_lite0", {}, 33),
    ("amoebanet", {"num_normal_cells": 2, "filters": 16}, 35),
]
_DEFAULT_NAMES = {name for name, _, _ in _DEFAULT}
_SLOW = [(name, {}, 64) for name in models.list_models() if name not in _DEFAULT_NAMES]
_SLOW += [("amoebanet", {}, 64), ("amoebanet", {"num_normal_cells": 4, "filters": 50}, 64), ("vgg11_bn", {}, 32)]
_CASES = _DEFAULT + [pytest.param(*case, marks=slow) for case in _SLOW]


def _id(case):
    name, options, size = case.values if hasattr(case, "values") else case
    return f"{name}-{size}" + "".join(f"-{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("name, options, size", _CASES, ids=[_id(c) for c in _CASES])
def test_builds_and_runs_at_batch_1_and_4(name, options, size):
    info = models.get_model_info(name)
    model = models.get_model(name, num_classes=7, **options)
    assert not model.training
    x = random_input((4, info.input_size[0], size, size))
    y4 = model(x)
    y1 = model(x[:1])
    assert y4.shape == (4, 7) and y1.shape == (1, 7)
    assert y4.dtype == np.float32 and np.isfinite(y4).all()
    # the batch is independent samples: sample 0 alone gives the same logits
    scale = max(float(np.abs(y4).max()), 1e-30)
    assert np.abs(y4[:1] - y1).max() <= 1e-4 * scale


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_lite0", "lenet5", "densenet121"])
def test_in_channels_option(name):
    model = models.get_model(name, in_channels=5, num_classes=3)
    size = 32 if name == "lenet5" else 40
    assert model(random_input((2, 5, size, size))).shape == (2, 3)
    with pytest.raises(ValueError):  # the stem expects 5 channels now
        model(random_input((2, 3, size, size)))


def test_amoebanet_options_change_the_architecture():
    small = models.get_model("amoebanet", num_normal_cells=1, filters=8)
    wider = models.get_model("amoebanet", num_normal_cells=1, filters=16)
    deeper = models.get_model("amoebanet", num_normal_cells=2, filters=8)
    # 2 stem cells + 3 stacks of N normal cells + 2 reduction cells
    assert len(small.cells) == 2 + 3 * 1 + 2 and len(deeper.cells) == 2 + 3 * 2 + 2
    assert models.count_parameters(wider) > models.count_parameters(small)
    # the last cell concatenates 4 states of 4F channels: the classifier sees 16F features
    assert small.fc.weight.shape == (1000, 16 * 8) and wider.fc.weight.shape == (1000, 16 * 16)


@pytest.mark.parametrize("builder_options, error", [({"num_classes": 0}, ValueError), ({"in_channels": 0}, ValueError),
                                                    ({"num_classes": 2.5}, TypeError)])
def test_bad_common_options(builder_options, error):
    name = next(iter(builder_options))
    with pytest.raises(error, match=name):
        models.get_model("resnet18", **builder_options)


def test_bad_model_options():
    with pytest.raises(ValueError, match="activation"):
        models.get_model("lenet5", activation="gelu")
    with pytest.raises(ValueError, match="pooling"):
        models.get_model("lenet5", pooling="lp")
    with pytest.raises(ValueError, match="filters"):
        models.get_model("amoebanet", filters=0)
    with pytest.raises(TypeError):
        models.get_model("resnet18", not_an_option=1)


@pytest.mark.parametrize("name, options, size", [
    ("googlenet", {"transform_input": True}, 32),
    ("densenet121", {}, 32),
    ("efficientnet_lite0", {}, 33),
    ("se_resnet50", {}, 32),
    ("amoebanet", {"num_normal_cells": 1, "filters": 8}, 35),
])
def test_models_trace_to_the_same_function(name, options, size):
    # forward uses only convcore.functional ops, so the graph tracer sees the whole model
    from convcore import graph
    model = models.get_model(name, **options)
    x = random_input((2, 3, size, size))
    expected = model(x)
    traced = graph.trace(model, x.shape)
    np.testing.assert_allclose(traced.run(x), expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))
