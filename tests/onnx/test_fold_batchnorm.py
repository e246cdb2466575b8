"""convcore.graph.passes.fold_batchnorm: folds a batch norm only into the convolution feeding it, keeps the
result, and leaves the input graph and the model's arrays untouched."""

import numpy as np


from onnx_helpers import assert_parity, randomize_batch_norm  # noqa: E402

import convcore  # noqa: E402
from convcore import functional as F  # noqa: E402
from convcore import nn  # noqa: E402
from convcore.graph.passes import fold_batchnorm  # noqa: E402

rng = np.random.default_rng(4)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)       # folded (gets a bias)
        self.bn = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)           # folded (has a bias)
        self.bn_dw = nn.BatchNorm2d(6)
        self.bn_after_add = nn.BatchNorm2d(6)                       # follows an add: kept
        self.shared = nn.Conv2d(6, 6, 1)                            # its output is read twice: kept
        self.bn_shared = nn.BatchNorm2d(6)
        self.bn_after_pool = nn.BatchNorm2d(6)                      # follows a pool: kept

    def forward(self, x):
        a = self.bn(self.conv(x))
        b = self.bn_dw(self.dw(a))
        c = self.bn_after_add(a + b)
        s = self.shared(c)
        d = self.bn_shared(s) + s
        return self.bn_after_pool(F.max_pool2d(d, 2))


def test_folds_only_conv_batchnorm_pairs():
    model = randomize_batch_norm(Net().eval())
    before = {k: v.copy() for k, v in model.state_dict().items()}
    graph = convcore.trace(model, (1, 3, 8, 8))
    params_before = {k: v.copy() for k, v in graph.params.items()}
    folded = fold_batchnorm(graph)

    kept = [n.name for n in folded.nodes if n.op == "batch_norm"]
    assert kept == ["bn_after_add", "bn_shared", "bn_after_pool"]
    conv = next(n for n in folded.nodes if n.name == "conv")
    assert conv.outputs == ["bn"] and conv.inputs[2] == "conv.bias" and "conv.bias" in folded.params
    assert "bn.running_mean" not in folded.params and "bn_shared.running_mean" in folded.params
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert_parity(folded.run(x), model(x))
    # nothing modified in place
    for key, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)
    assert len(graph.nodes) == len(folded.nodes) + 2
    for key, value in params_before.items():
        np.testing.assert_array_equal(graph.params[key], value)


def test_shared_weight_gets_a_new_name():
    weight = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    bn = randomize_batch_norm(nn.Sequential(nn.BatchNorm2d(4)).eval())[0]

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(weight)
            self.bn = bn

        def forward(self, x):
            return F.add(self.bn(F.conv2d(x, self.w, padding=1)), F.conv2d(x, self.w, padding=1))

    model = Tied().eval()
    folded = fold_batchnorm(convcore.trace(model, (1, 4, 6, 6)))
    convs = [n for n in folded.nodes if n.op == "conv2d"]
    assert convs[0].inputs[1] != "w" and convs[1].inputs[1] == "w"
    np.testing.assert_array_equal(folded.params["w"], weight)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    assert_parity(folded.run(x), model(x))


def test_separable_and_depthwise_ops_fold():
    dw, pw = rng.standard_normal((6, 1, 3, 3)).astype(np.float32), rng.standard_normal((5, 6, 1, 1)).astype(
        np.float32)
    stats = [rng.random(5).astype(np.float32) + np.float32(0.5) for _ in range(4)]
    stats6 = [rng.random(6).astype(np.float32) + np.float32(0.5) for _ in range(4)]

    class Sep(nn.Module):
        def forward(self, x):
            y = F.batch_norm(F.depthwise_conv2d(x, np.concatenate([dw[:3], dw[:3]]), padding=1), *stats6, eps=1e-3)
            return F.batch_norm(F.separable_conv2d(y, dw, pw, padding=1), *stats)

    model = Sep()
    folded = fold_batchnorm(convcore.trace(model, (1, 3, 7, 7)))
    assert [n.op for n in folded.nodes] == ["depthwise_conv2d", "separable_conv2d"]
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    assert_parity(folded.run(x), model(x))
