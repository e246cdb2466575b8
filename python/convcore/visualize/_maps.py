"""Pictures read off one forward pass (filters, activations) or one gradient (saliency, Grad-CAM, top patches)."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

from ..graph import Graph
from ..gradients import GradientProgram, Layers, guided_rules, logit, model_graph, neuron
from ._common import (Folder, ImagesLike, ModelLike, Pictures, chw_to_image, colormap, file_name, grid, normalize01,
                      resize_image, resolve, save_all, to_uint8)


def _graph(net, shape):
    graph, names = model_graph(net.model, shape)
    return graph, Layers(graph, names)


def _layer_label(name):
    return name.replace(".", "_")


# --- filters ---------------------------------------------------------------------------------------------------

def filters(model: ModelLike = None, layer: Optional[str] = None, scale: Optional[int] = None,
            out: Folder = None) -> Pictures:
    """The kernels of a convolution with 3 input channels as a grid of colour tiles (AlexNet's first-layer figure),
    each filter scaled to [0, 1] on its own.

    Args:
        model: zoo name, `LoadedModel`, module, ONNX model (default: efficientnet_lite0 with its installed weights).
        layer: the convolution's name (default: the first one reading the 3 colour channels).
        scale: pixels per kernel tap (default: a tile of about 48 pixels).
        out: a folder to write `filters_<layer>.png` into.

    Returns:
        dict file name -> uint8 grid image.
    """
    net = resolve(model)
    graph, layers = _graph(net, (1, 3, net.size, net.size))
    convs = [n for n in graph.nodes if n.op in ("conv2d", "depthwise_conv2d") and n.inputs[1] in graph.params]
    if layer is None:
        node = next((n for n in convs if graph.params[n.inputs[1]].shape[1] == 3), convs[0] if convs else None)
        if node is None:
            raise ValueError("model: expected a convolution with constant weights (got none)")
    else:
        value = layers.resolve(layer)
        node = next((n for n in convs if n.outputs[0] == value or n.name == layer), None)
        if node is None:
            names = ", ".join(n.name for n in convs[:12])
            raise ValueError(f"layer: expected a convolution (got {layer!r}); convolutions: {names}, ...")
    w = np.asarray(graph.params[node.inputs[1]], np.float64)
    k, c, r, s = w.shape
    scale = scale or max(1, 48 // max(r, s))
    tiles = []
    for f in w:
        img = f[:3] if c >= 3 else np.repeat(f[:1], 3, axis=0)
        img = normalize01(img)  # each filter on its own scale, as AlexNet's figure
        tiles.append(resize_image(chw_to_image(img), (r * scale, s * scale), "nearest"))
    pictures = {file_name("filters", _layer_label(node.name)): grid(tiles, int(np.ceil(np.sqrt(k))), pad=2)}
    save_all(pictures, out)
    return pictures


# --- activations ---------------------------------------------------------------------------------------------

def activations(model: ModelLike = None, images: ImagesLike = None, layer: Optional[str] = None,
                channels: Union[int, Sequence[int]] = 64, size: Optional[int] = None, out: Folder = None) -> Pictures:
    """The feature maps of one layer for each image, as a grid (viridis colours, one scale for the whole layer).

    Args:
        model: as `filters`.
        images: paths or HWC images (default: the bundled photos).
        layer: a layer name (default: the middle of the network).
        channels: how many channels to show (the first ones), or a list of channel indices.
        size: each map's side in the grid (default: upscaled to about 64 pixels).
        out: a folder to write `activations_<image>_<layer>.png` into.

    Returns:
        dict file name -> uint8 grid image (one per image).
    """
    net = resolve(model)
    items, labels = _images(images)
    x = np.stack([net.load(im) for im in items])
    graph, layers = _graph(net, x.shape)
    layer = layer or _middle_layer(graph, layers)
    maps = forward_values(net, x, [layer])[layer]
    if maps.ndim != 4:
        raise ValueError(f"layer: expected a layer with feature maps (got {layer!r} of shape {maps.shape})")
    picked = list(range(min(channels, maps.shape[1]))) if isinstance(channels, int) else list(channels)
    lo, hi = float(maps[:, picked].min()), float(maps[:, picked].max())
    side = size or max(maps.shape[2], 64 // maps.shape[2] * maps.shape[2])
    pictures = {}
    for label, m in zip(labels, maps):
        tiles = [to_uint8(resize_image(colormap(normalize01(m[c], lo, hi)), side, "nearest"
                                       if side % m.shape[1] == 0 else "bilinear")) for c in picked]
        pictures[file_name("activations", label, _layer_label(layer))] = grid(tiles, int(np.ceil(np.sqrt(len(tiles)))))
    save_all(pictures, out)
    return pictures


def _layer_objective(layer):
    from ..gradients import layer as layer_term

    return layer_term(layer)


def _middle_layer(graph, layers):
    """A layer halfway through the network (by node count) with 4-D maps."""
    candidates = [n.outputs[0] for n in graph.nodes if len(graph.shapes[n.outputs[0]]) == 4]
    value = candidates[len(candidates) // 2]
    return next((name for name, v in layers.map.items() if v == value), value)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _images(images):
    """(list of paths / arrays, labels): the bundled photos by default; folders are walked for image files."""
    from .. import data

    if images is None:
        images = data.sample_images()
    if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    items = []
    for im in images:
        if isinstance(im, (str, os.PathLike)) and os.path.isdir(im):
            for root, dirs, files in os.walk(im):
                dirs.sort()
                items += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            items.append(im)
    if not items:
        raise ValueError(f"images: expected at least one image (got none in {images!r})")
    labels = [os.path.splitext(os.path.basename(os.fspath(im)))[0] if isinstance(im, (str, os.PathLike))
              else f"image{i}" for i, im in enumerate(items)]
    return items, labels


def forward_values(net, x, names):
    """The forward values of layers `names` for the batch x (no backward pass)."""
    program = GradientProgram(net.model, x.shape, objective=_layer_objective(names[0]), wrt=names[:1], keep=names,
                              forward="eager")
    return program(x).activations


# --- saliency and Grad-CAM -------------------------------------------------------------------------------------

SALIENCY_METHODS = ("gradient", "smoothgrad", "integrated")


def saliency(model: ModelLike = None, images: ImagesLike = None, target: Union[str, int, None] = None,
             layer: Optional[str] = None, method: str = "smoothgrad", samples: Optional[int] = None,
             noise: float = 0.15, overlay: bool = True, seed: int = 0, out: Folder = None) -> Pictures:
    """Image-specific class saliency and Grad-CAM (Selvaraju et al. 2017: the layer's maps weighted by the spatial
    mean of the score's gradient, rectified, upsampled) for each image, over the photo.

    Saliency `method`: "gradient" (Simonyan et al. 2013: the largest absolute gradient of the class score over the
    colour channels: one gradient, noisy), "smoothgrad" (Smilkov et al. 2017: the gradient averaged over `samples`
    copies of the image with Gaussian noise of `noise` times the pixel range added, which cancels the gradient's
    high-frequency fluctuations), or "integrated" (Sundararajan et al. 2017, Integrated Gradients: (x - x0) times
    the gradient averaged along the straight path from a black image x0 to x in `samples` steps; the attributions
    sum to the score's change).

    Args:
        model: as `filters`.
        images: paths, folders or HWC images (default: the bundled photos).
        target: a class name or index (default: each image's top class).
        layer: Grad-CAM's layer (default: the last layer with maps larger than 1 x 1).
        method: "gradient", "smoothgrad" (default) or "integrated".
        samples: noisy copies (smoothgrad, default 25) or path steps (integrated, default 32).
        noise: SmoothGrad's noise, as a fraction of the pixel range (0.1-0.2 in the paper).
        overlay: the saliency map in colour over a dimmed grey photo (False: the grey map alone).
        seed: SmoothGrad's noise.
        out: a folder to write `saliency_<image>_<class>.png` and `gradcam_<image>_<class>.png` into.

    Returns:
        dict file name -> uint8 image: per image, the saliency map and the Grad-CAM heat map over the image.
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(f"method: expected one of {', '.join(SALIENCY_METHODS)} (got {method!r})")
    if samples is not None and (not isinstance(samples, (int, np.integer)) or samples < 1):
        raise ValueError(f"samples: expected a positive int (got {samples!r})")
    if not 0 <= noise <= 1:
        raise ValueError(f"noise: expected a fraction of the pixel range in [0, 1] (got {noise})")
    net = resolve(model)
    items, labels = _images(images)
    x = np.stack([net.load(im) for im in items])
    graph, layers = _graph(net, x.shape)
    layer = layer or _last_map_layer(graph, layers)
    _need_maps(graph, layers, layer)
    logits = forward_values(net, x, [graph.outputs[0]])[graph.outputs[0]].reshape(len(x), -1)
    classes = [int(np.argmax(z)) for z in logits] if target is None else [net.class_index(target)] * len(x)
    objective = sum(logit(c, sample=i) for i, c in enumerate(classes))
    program = GradientProgram(net.model, x.shape, objective, wrt=[graph.inputs[0], layers.resolve(layer)],
                              keep=[layer], forward="eager")
    result = program(x)
    dx, da = (result.grads[v] for v in program.wrt)
    maps = result.activations[layer]
    sal = _saliency_maps(net, x, objective, dx, method, samples, noise, seed)
    if method != "gradient":  # shown lightly blurred (sigma: 1/150 of the side), as the attributions are per pixel
        from ._optimize import gaussian_blur

        sal = gaussian_blur(sal[:, None].astype(np.float32), max(1.0, x.shape[-1] / 150))[:, 0]
    pictures = {}
    for i, (label, c) in enumerate(zip(labels, classes)):
        name = net.class_name(c)
        photo = np.transpose(net.pixels(x[i]), (1, 2, 0))
        m = normalize01(sal[i], 0.0, np.percentile(sal[i], 99.5 if method == "gradient" else 99.0) or None)
        pictures[file_name("saliency", label, name)] = to_uint8(_over(photo, m) if overlay else m)
        weights = da[i].mean(axis=(1, 2))
        cam = np.maximum((weights[:, None, None] * maps[i]).sum(axis=0), 0.0)
        cam = resize_image(normalize01(cam).astype(np.float32), x.shape[-1], "bilinear")
        heat = 0.55 * photo + 0.45 * colormap(cam, "jet")
        pictures[file_name("gradcam", label, name)] = to_uint8(heat)
    save_all(pictures, out)
    return pictures


def _saliency_maps(net, x, objective, dx, method, samples, noise, seed):
    """(N, H, W) saliency of each image: from the plain gradient `dx`, or SmoothGrad / Integrated Gradients."""
    if method == "gradient":
        return np.abs(dx).max(axis=1)
    program = GradientProgram(net.model, x.shape, objective)  # the input's gradient, one compiled step
    total = np.zeros(x.shape, np.float64)
    if method == "smoothgrad":
        rng = np.random.default_rng(seed)
        count = samples or 25
        sigma = (noise / net.std).astype(np.float32)[None, :, None, None]  # `noise` of the [0, 1] pixel range
        for _ in range(count):
            noisy = (x + sigma * rng.standard_normal(x.shape, dtype=np.float32)).astype(np.float32)
            total += program(noisy).grads[program.wrt[0]]
        return np.abs(total / count).sum(axis=1)
    count = samples or 32
    base = net.normalize(np.zeros((1, 3) + x.shape[2:], np.float32))  # a black image
    for k in range(count):  # the midpoint rule along the path
        alpha = (k + 0.5) / count
        total += program((base + alpha * (x - base)).astype(np.float32)).grads[program.wrt[0]]
    return np.abs((x - base) * total / count).sum(axis=1)


def _over(photo, m):
    """Saliency `m` (H, W) in [0, 1] in colour over the photo, dimmed and grey where the map is low."""
    grey = photo.mean(axis=2, keepdims=True) * np.ones((1, 1, 3))
    a = (0.85 * np.sqrt(m))[..., None]
    return (1 - a) * (0.25 + 0.45 * grey) + a * colormap(m, "inferno")


def _need_maps(graph, layers, layer):
    """ValueError unless `layer` gives spatial maps (N, C, H, W), which Grad-CAM weights and sums; the message lists
    the layers that do."""
    shape = graph.shapes[layers.resolve(layer)]
    if len(shape) == 4:
        return
    valid = [name for name in layers.names() if name.count(".") <= 1 and not name.startswith("input")
             and len(graph.shapes[layers.map[name]]) == 4]
    listing = ", ".join(valid[:40]) + (f", ... ({len(valid)} in all)" if len(valid) > 40 else "")
    raise ValueError(f"layer: expected a layer with spatial maps (N, C, H, W) for Grad-CAM (got {layer!r}, whose "
                     f"output has shape {tuple(shape)}); layers with maps: {listing}")


def _last_map_layer(graph, layers):
    """The last layer whose maps are larger than 1 x 1 (Grad-CAM's usual choice: the last convolutional block)."""
    value = None
    for node in graph.nodes:
        shape = graph.shapes[node.outputs[0]]
        if len(shape) == 4 and shape[2] * shape[3] > 1:
            value = node.outputs[0]
    if value is None:
        raise ValueError("layer: the model has no layer with spatial maps; pass layer=")
    return next((name for name, v in layers.map.items() if v == value and name == value), value)


# --- top patches and their projections ----------------------------------------------------------------------------

_WINDOW_OPS = ("conv2d", "depthwise_conv2d", "separable_conv2d", "max_pool2d", "avg_pool2d")


def receptive_field(graph: Graph, value: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """((size_h, size_w), (jump_h, jump_w), (start_h, start_w)): position (i, j) of the 4-D `value` sees input rows
    [start_h + i * jump_h, start_h + i * jump_h + size_h) and likewise columns. Windows compose as usual (size grows
    by the dilated kernel's extent times the jump, the jump by the stride, the start moves back by the padding);
    merging ops (add, concat, ...) take the union of their inputs' fields; a broadcast operand (a squeeze-excitation
    scale) is left out; global pooling and linear layers see the whole input."""
    n, c, h, w = graph.shapes[graph.inputs[0]]
    whole = ((h, w), (h, w), (0, 0))
    fields: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
        graph.inputs[0]: ((1, 1), (1, 1), (0, 0))}
    for node in graph.nodes:
        out = node.outputs[0]
        shape = graph.shapes[out]
        if len(shape) != 4:
            fields[out] = whole
            continue
        if node.op in _WINDOW_OPS and node.inputs[0] in fields:
            size, jump, start = fields[node.inputs[0]]
            a = node.attrs
            kernel = a["kernel_size"] if "kernel_size" in a else graph.shapes[node.inputs[1]][2:]
            dil = a.get("dilation", (1, 1))
            extent = [dil[i] * (kernel[i] - 1) + 1 for i in range(2)]
            fields[out] = (tuple(size[i] + (extent[i] - 1) * jump[i] for i in range(2)),
                           tuple(jump[i] * a["stride"][i] for i in range(2)),
                           (start[0] - a["padding"][0] * jump[0], start[1] - a["padding"][2] * jump[1]))
            continue
        ins = [fields[i] for i in node.inputs if i in fields and len(graph.shapes[i]) == 4 and
               graph.shapes[i][2:] == shape[2:]]
        if not ins or (shape[2:] == (1, 1) and (h, w) != (1, 1)):
            fields[out] = whole
            continue
        jump = ins[0][1]
        start = tuple(min(f[2][i] for f in ins) for i in range(2))
        end = tuple(max(f[2][i] + f[0][i] for f in ins) for i in range(2))
        fields[out] = (tuple(end[i] - start[i] for i in range(2)), jump, start)
    return fields[value]


def layers_at(model: ModelLike = None, fractions: Sequence[float] = (0.2, 0.4, 0.6, 0.8)) -> list[str]:
    """Layer names at these fractions of the network's depth, preferring blocks (containers such as ResNet's
    "layer2" or EfficientNet's "_blocks.5") over single ops: a default for the Zeiler & Fergus figure."""
    net = resolve(model)
    graph, layers = _graph(net, (1, 3, net.size, net.size))
    order = {node.outputs[0]: i for i, node in enumerate(graph.nodes)}
    maps = {v for v in order if len(graph.shapes[v]) == 4 and graph.shapes[v][2] * graph.shapes[v][3] > 1}
    leaves = {node.name for node in graph.nodes}
    candidates = []
    for depth in (0, 1):  # top-level blocks first (ResNet's layer1..4), then their children (EfficientNet's)
        blocks: dict[str, str] = {}
        for name, value in layers.map.items():
            if value in maps and name not in leaves and name != value and name.count(".") == depth:
                blocks.setdefault(value, name)
        candidates = sorted(blocks.items(), key=lambda kv: order[kv[0]])
        if len(candidates) >= len(fractions):
            break
    if len(candidates) < len(fractions):
        candidates = sorted(((v, next((n for n, w in layers.map.items() if w == v), v)) for v in maps),
                            key=lambda kv: order[kv[0]])
    picked = [candidates[min(len(candidates) - 1, int(f * len(candidates)))][1] for f in fractions]
    return list(dict.fromkeys(picked))


def top_patches(model: ModelLike = None, images: ImagesLike = None, layer: Optional[str] = None,
                channel: Optional[int] = None, k: int = 9, out: Folder = None,
                progress: Optional[bool] = None) -> Pictures:
    """The k image regions that excite one channel most, each beside its guided-backpropagation projection (Zeiler
    & Fergus 2014's figure, with Springenberg et al.'s guided backpropagation for the projection).

    Candidates are the local maxima of the channel's map in every image (several per image, apart by half a receptive
    field, or closer where that leaves fewer than k: deep layers); the strongest k are kept. Each patch is the
    neuron's receptive field, cropped from the image.

    Args:
        model: as `filters`.
        images: paths, folders or HWC images (default: the bundled photos).
        layer, channel: the channel to explain (layer default: the middle of the network; channel default: the
            channel with the strongest activation on these images).
        k: patches to show.
        out: a folder to write `patches_<layer>_<channel>.png` into.

    Returns:
        dict file name -> uint8 image: the projections (left grid) beside the patches (right grid).
    """
    net = resolve(model)
    items, labels = _images(images)
    x = np.stack([net.load(im) for im in items])
    graph, layers = _graph(net, x.shape)
    layer = layer or _middle_layer(graph, layers)
    value = layers.resolve(layer)
    maps = forward_values(net, x, [layer])[layer]
    if maps.ndim != 4:
        raise ValueError(f"layer: expected a layer with feature maps (got {layer!r} of shape {maps.shape})")
    if channel is None:
        channel = int(np.argmax(maps.max(axis=(0, 2, 3))))
    if not 0 <= channel < maps.shape[1]:
        raise ValueError(f"channel: expected a channel of layer {layer!r} in 0..{maps.shape[1] - 1} (got {channel})")
    (rh, rw), (jh, jw), (sh, sw) = receptive_field(graph, value)
    picks = _strongest(maps[:, channel], k, max(1, (rh // jh) // 2), max(1, (rw // jw) // 2))
    if not picks:
        raise ValueError(f"channel {channel} of layer {layer!r} is not active on these images")
    batch = np.stack([x[i] for i, _, _, _ in picks])
    objective = sum(neuron(layer, channel, yy, xx, sample=j) for j, (_, yy, xx, _) in enumerate(picks))
    program = GradientProgram(net.model, batch.shape, objective, rules=guided_rules(), forward="eager")
    grads = program(batch).grads[program.wrt[0]]
    side = x.shape[-1]
    patches, projections = [], []
    for (i, yy, xx, _), g in zip(picks, grads):
        # The theoretical field (receptive_field) is far larger than what the neuron responds to; show the square
        # around its centre that holds most of the projection (the effective field), at least 1/8 of the image.
        cy, cx = sh + yy * jh + rh // 2, sw + xx * jw + rw // 2
        half = _effective_half(np.abs(g).sum(axis=0), cy, cx, max(rh, rw) // 2, max(8, side // 16))
        top, left = cy - half, cx - half
        photo = _crop(np.transpose(net.pixels(x[i]), (1, 2, 0)), top, left, 2 * half, 0.5)
        proj = _crop(np.transpose(g, (1, 2, 0)), top, left, 2 * half, 0.0)
        proj = 0.5 + proj / (6.0 * (proj.std() or 1.0))  # a contrast stretch, as the deconvnet figures
        patches.append(to_uint8(photo))
        projections.append(to_uint8(proj))
    tile = max(64, max(p.shape[0] for p in patches))
    patches = [resize_image(p, tile) for p in patches]
    projections = [resize_image(p, tile) for p in projections]
    columns = int(np.ceil(np.sqrt(len(picks))))
    left_grid, right_grid = grid(projections, columns), grid(patches, columns)
    figure = np.concatenate([left_grid, np.full((left_grid.shape[0], 8, 3), 255, np.uint8), right_grid], axis=1)
    pictures = {file_name("patches", _layer_label(layer), channel): figure}
    save_all(pictures, out)
    return pictures


def _strongest(maps, k, gap_h, gap_w):
    """(image, y, x, value) of the k largest activations over all images, local maxima at least gap apart. Where
    that leaves fewer than k (deep layers: a receptive field as large as the image leaves one maximum per image),
    the gap is halved until there are k, down to distinct positions."""
    while True:
        picks = _maxima(maps, k, gap_h, gap_w)
        if len(picks) >= k or (gap_h == 0 and gap_w == 0):
            return picks
        gap_h, gap_w = gap_h // 2, gap_w // 2


def _maxima(maps, k, gap_h, gap_w):
    candidates = []
    for i, m in enumerate(maps):
        m = m.copy()
        for _ in range(k):
            y, x = np.unravel_index(int(np.argmax(m)), m.shape)
            v = float(m[y, x])
            if not np.isfinite(v) or v <= 0 or v == -np.inf:
                break
            candidates.append((i, int(y), int(x), v))
            m[max(0, y - gap_h):y + gap_h + 1, max(0, x - gap_w):x + gap_w + 1] = -np.inf
    candidates.sort(key=lambda c: -c[3])
    return candidates[:k]


def _effective_half(mass, cy, cx, largest, smallest, share=0.9):
    """Half the side of the smallest square centred at (cy, cx) holding `share` of `mass` (within the bounds)."""
    total = mass.sum()
    if total <= 0:
        return smallest
    for half in range(smallest, max(largest, smallest) + 1, 2):
        box = mass[max(cy - half, 0):cy + half, max(cx - half, 0):cx + half]
        if box.sum() >= share * total:
            return half
    return max(largest, smallest)


def _crop(img, top, left, size, fill):
    """img[top:top + size, left:left + size], `fill` where that leaves the image."""
    out = np.full((size, size, img.shape[2]), fill, np.float64)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size, img.shape[0]), min(left + size, img.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = img[y0:y1, x0:x1]
    return out
