"""Parameter counts (and torchvision's MAC counts) against published figures."""

import pytest

from convcore import models  # noqa: E402

slow = pytest.mark.slow

# torchvision 0.29.1 weights metadata: (meta["num_params"], meta["_ops"] = GMACs at the weights' crop size).
TORCHVISION = {
    "alexnet": (61100840, 0.714),
    "vgg11": (132863336, 7.609),
    "vgg11_bn": (132868840, 7.609),
    "vgg13": (133047848, 11.308),
    "vgg13_bn": (133053736, 11.308),
    "vgg16": (138357544, 15.47),
    "vgg16_bn": (138365992, 15.47),
    "vgg19": (143667240, 19.632),
    "vgg19_bn": (143678248, 19.632),
    "googlenet": (6624904, 1.498),
    "resnet18": (11689512, 1.814),
    "resnet34": (21797672, 3.664),
    "resnet50": (25557032, 4.089),
    "resnet101": (44549160, 7.801),
    "resnet152": (60192808, 11.514),
    "resnext50_32x4d": (25028904, 4.23),
    "wide_resnet50_2": (68883240, 11.398),
    "densenet121": (7978856, 2.834),
    "densenet161": (28681000, 7.728),
    "densenet169": (14149480, 3.36),
    "densenet201": (20013928, 4.291),
    "mobilenet_v2": (3504872, 0.301),
    "mnasnet0_5": (2218512, 0.104),
    "mnasnet0_75": (3170208, 0.215),
    "mnasnet1_0": (4383312, 0.314),
    "mnasnet1_3": (6282256, 0.526),
    "efficientnet_b0": (5288548, 0.386),
    "efficientnet_b1": (7794184, 0.687),
    "efficientnet_b2": (9109994, 1.088),
    "efficientnet_b3": (12233232, 1.827),
    "efficientnet_b4": (19341616, 4.394),
    "efficientnet_b5": (30389784, 10.266),
    "efficientnet_b6": (43040704, 19.068),
    "efficientnet_b7": (66347960, 37.746),
}

# Models after their papers. Sources:
# - lenet5: LeCun et al. 1998 Sec. II-B: C1 156, C5 48,120 and F6 10,164 trainable parameters; C3 with all 6 inputs
#   connected: 16 * (6 * 25 + 1) = 2,416 (the paper's sparse table: 1,516); output 84 * 10 + 10 = 850.
# - preact_resnet*: timm 1.0.31 resnetv2_18/34/50/101/152 (same layout), sum of p.numel().
# - se_resnet*: timm 1.0.31 seresnet50/101/152; 28,088,024 is also Cadene's pretrainedmodels se_resnet50 and the
#   paper's "~28.1M" (Hu et al. 2018, Table 2: 3.87 GFLOPs, i.e. ResNet-50 + ~2.5M SE parameters).
# - efficientnet_lite*: timm 1.0.31 tf_efficientnet_lite0..4 (ports of the TF checkpoints); the TF README lists
#   4.7M / 5.4M / 6.1M / 8.2M / 13.0M. lite0 also equals efficientnet-lite0-57934424.pth (4,652,008).
PAPERS = {
    "lenet5": 156 + 2416 + 48120 + 10164 + 850,
    "preact_resnet18": 11687720,
    "preact_resnet34": 21795880,
    "preact_resnet50": 25549352,
    "preact_resnet101": 44541480,
    "preact_resnet152": 60185128,
    "se_resnet50": 28088024,
    "se_resnet101": 49326872,
    "se_resnet152": 66821848,
    "efficientnet_lite0": 4652008,
    "efficientnet_lite1": 5416680,
    "efficientnet_lite2": 6092072,
    "efficientnet_lite3": 8197096,
    "efficientnet_lite4": 13006568,
}

# Building a VGG (130M+ parameters, numpy init) takes seconds: the default run keeps one of each kind.
_HEAVY = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "wide_resnet50_2", "efficientnet_b6",
          "efficientnet_b7", "resnet152", "densenet161"}


def _params(names):
    return [pytest.param(n, marks=slow) if n in _HEAVY else n for n in names]


@pytest.mark.parametrize("name", _params(TORCHVISION))
def test_torchvision_parameter_count(name):
    assert models.count_parameters(models.get_model(name)) == TORCHVISION[name][0]


@pytest.mark.parametrize("name", _params(PAPERS))
def test_paper_parameter_count(name):
    assert models.count_parameters(models.get_model(name)) == PAPERS[name]


def test_every_registered_model_has_a_reference_count():
    assert set(models.list_models()) - set(TORCHVISION) - set(PAPERS) == {"amoebanet"}


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "googlenet", "densenet121", "efficientnet_b0",
                                  pytest.param("efficientnet_b2", marks=slow), pytest.param("vgg16", marks=slow)])
def test_summary_macs_match_torchvision(name):
    # summary counts conv + linear multiply-accumulates at the registered input size (torchvision's crop size)
    info = models.summary(name)
    assert info["params"] == TORCHVISION[name][0]
    assert info["gmacs"] == pytest.approx(TORCHVISION[name][1], abs=0.0015)
    assert info["gflops"] == pytest.approx(2 * info["macs"] / 1e9, abs=0.001)
    assert info["output_shape"] == (1, 1000)


@pytest.mark.parametrize("normal_cells, filters, millions", [(4, 50, 5.1), (6, 190, 86.7),
                                                               pytest.param(6, 448, 469, marks=slow)])
def test_amoebanet_parameter_count_matches_paper(normal_cells, filters, millions):
    # Real et al. 2019: Table 3 (mobile, N=4, F=50: 5.1M) and Table 2 (N=6, F=190: 86.7M; N=6, F=448: 469M).
    # We get 5,086,930 / 86,718,797 / 468,151,184: equal at the paper's precision, the largest 0.2% below.
    model = models.get_model("amoebanet", num_normal_cells=normal_cells, filters=filters)
    params = models.count_parameters(model) / 1e6
    assert abs(params - millions) <= (0.05 if millions < 100 else 0.005 * millions)
