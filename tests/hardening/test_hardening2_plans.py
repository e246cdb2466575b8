"""Issue 22 (hardening, round 2): compiled Plans. Each test failed before its fix."""

import numpy as np
import pytest

import convcore
import convcore.functional as F


# ---- item 4: a 1x1 value both concatenated in place and flattened ----------------------------------------------

@pytest.mark.parametrize("fuse", [True, False])
def test_item04_pooled_value_in_a_concat_and_flattened_compiles(fuse):
    """A global pool's (N, C, 1, 1) output is a channel slice of a concatenation (written in place) and is also
    flattened for a linear layer: compile refused it ('plan.reshape: expected a root tensor'). A one-pixel map and
    its flattening are the same tensor, slice or not."""
    rng = np.random.default_rng(0)
    w, wl = rng.standard_normal((8, 4, 3, 3)).astype(np.float32), rng.standard_normal((5, 8)).astype(np.float32)
    w2 = rng.standard_normal((6, 12, 1, 1)).astype(np.float32)

    def fn(x):
        g = F.global_avg_pool2d(F.relu(F.conv2d(x, w, padding=1)))
        c = F.concat([g, F.global_max_pool2d(x)])
        return F.conv2d(c, w2), F.linear(F.flatten(g), wl)

    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    plan = convcore.compile(fn, x.shape, fuse=fuse)
    assert plan.eager_nodes == []
    for batch in (x, x[:1], np.concatenate([x, x])):
        for got, want in zip(plan(batch), fn(batch)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
