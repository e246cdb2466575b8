"""`convcore visualize`: the pictures of `convcore.visualize` as PNG files, one per picture plus one combined figure.

    convcore visualize class dumbbell cup dalmatian "bell pepper" lemon husky      # the lecture's class models
    convcore visualize feature _blocks.10:7 _blocks.13:20 --steps 256
    convcore visualize patches                                                     # Zeiler & Fergus, 4 layers
    convcore visualize saliency photos/ --model resnet50 --weights resnet50-11ad3fa6.pth
"""

from __future__ import annotations

import os
import time

import numpy as np

from ._common import WEIGHTS_HELP, CLIError, UsageError, add_threads_argument, load_model, log, set_threads

KINDS = ("filters", "activations", "saliency", "patches", "class", "feature")
DEFAULT_MODEL = "efficientnet_lite0"


def add_arguments(parser):
    sub = parser.add_subparsers(dest="kind", metavar="KIND", parser_class=type(parser))
    helps = {
        "filters": "the first convolution's kernels as colour tiles (AlexNet's figure)",
        "activations": "a layer's feature maps for each image",
        "saliency": "class saliency maps (Simonyan et al.) and Grad-CAM for each image",
        "patches": "the image patches that excite a channel most, beside their guided-backprop projections",
        "class": "class model images by gradient ascent (Simonyan et al.): the lecture's figure",
        "feature": "feature visualization (Olah et al.): layer:channel, layer, or layer:channel@y,x objectives",
    }
    for kind in KINDS:
        p = sub.add_parser(kind, help=helps[kind], description=helps[kind])
        if kind in ("activations", "saliency", "patches"):
            p.add_argument("images", nargs="*", metavar="IMAGE|DIR", help="default: the bundled photos")
        if kind == "class":
            p.add_argument("targets", nargs="+", metavar="CLASS", help="class names (\"bell pepper\") or indices")
        if kind == "feature":
            p.add_argument("objectives", nargs="+", metavar="OBJECTIVE",
                           help="layer:channel (a channel), layer (the whole layer), layer:channel@y,x or "
                                "layer:channel@ (a neuron: the given or the centre position)")
        if kind in ("filters", "activations", "saliency"):
            p.add_argument("--layer", metavar="NAME", help="the layer (default: chosen for the picture)")
        if kind == "activations":
            p.add_argument("--channels", type=int, default=64, metavar="N", help="channels to show (default 64)")
        if kind == "saliency":
            p.add_argument("--target", metavar="CLASS", help="class to explain (default: each image's top class)")
            p.add_argument("--method", default="smoothgrad", choices=("gradient", "smoothgrad", "integrated"),
                           help="the saliency map: one gradient, SmoothGrad (noisy copies averaged) or Integrated "
                                "Gradients (default: smoothgrad)")
            p.add_argument("--samples", type=int, metavar="N",
                           help="SmoothGrad's noisy copies (default 25) or Integrated Gradients' steps (default 32)")
            p.add_argument("--no-overlay", action="store_true", help="the grey saliency map, not over the photo")
        if kind in ("activations", "saliency", "patches"):
            p.add_argument("--images", action="append", metavar="DIR|IMAGE", dest="more_images",
                           help="images or a folder of them, as the positional arguments (repeatable)")
        if kind == "patches":
            p.add_argument("--unit", action="append", metavar="LAYER[:CHANNEL]",
                           help="a layer and channel to explain (repeatable; default: 4 layers through the network, "
                                "each with its most active channel)")
            p.add_argument("-k", type=int, default=9, metavar="K", help="patches per channel (default 9)")
        if kind in ("class", "feature"):
            p.add_argument("--steps", type=int, metavar="N", help="optimization steps (default 256)")
            p.add_argument("--size", type=int, metavar="PIXELS",
                           help="image side (default: the model's input size for class, 128 for feature)")
            p.add_argument("--batch-size", type=int, default=8, metavar="N",
                           help="pictures optimized together (default 8)")
        p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME|FILE.onnx",
                       help=f"zoo model name or ONNX file (default: {DEFAULT_MODEL} with its installed weights)")
        p.add_argument("--weights", metavar="WEIGHTS",
                       help=f"for a zoo model: {WEIGHTS_HELP} (default: weights already on this machine)")
        p.add_argument("--preset", metavar="NAME", help="use this zoo model's preprocessing (for ONNX files)")
        p.add_argument("--out", default=".", metavar="DIR", help="folder for the PNG files (default: here)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same pictures")
        add_threads_argument(p)
        p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args):
    if args.kind is None:
        raise UsageError(f"visualize: expected one of {', '.join(KINDS)} (see 'convcore visualize --help')")
    from convcore import visualize

    set_threads(args.threads)
    for name in ("steps", "size", "batch_size", "k", "channels", "samples"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')}: expected a positive integer (got {value})")
    if getattr(args, "size", None) is not None and not 2 <= args.size <= visualize.MAX_SIZE:
        raise UsageError(f"--size: expected an image side in [2, {visualize.MAX_SIZE}] pixels (got {args.size})")
    images = (getattr(args, "images", None) or []) + (getattr(args, "more_images", None) or []) or None
    for path in images or ():
        if not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")
    try:
        loaded = load_model(args.model, args.weights, args.preset)
    except UsageError:
        raise
    net = visualize.resolve(loaded)
    progress = False if args.no_progress else None
    start = time.perf_counter()
    try:
        pictures, combined, title = _make(args, visualize, net, images, progress)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    seconds = time.perf_counter() - start
    try:
        paths = [visualize.save_png(img, os.path.join(args.out, name)) for name, img in pictures.items()]
        if combined is not None:
            paths.append(visualize.save_png(combined, os.path.join(args.out, title)))
    except OSError as exc:
        raise CLIError(f"--out: cannot write into {args.out}: {exc.strerror or exc}") from None
    for path in paths:
        print(path)
    log(f"convcore: {len(paths)} PNG file(s) from {net.name} in {seconds:.1f} s")
    return 0


def _captions(pictures, prefix):
    """Captions for a montage: the file names without the kind prefix and the extension."""
    return {name[len(prefix) + 1:-4].replace("_", " ") if name.startswith(prefix + "_") else name[:-4]: img
            for name, img in pictures.items()}


def _make(args, visualize, net, images, progress):
    """(pictures, combined figure or None, combined file name)."""
    kind = args.kind
    if kind == "filters":
        pictures = visualize.filters(net, layer=args.layer)
        return pictures, visualize.montage(_captions(pictures, "filters"), columns=1), "filters.png"
    if kind == "activations":
        pictures = visualize.activations(net, images, layer=args.layer, channels=args.channels)
        return pictures, visualize.montage(_captions(pictures, "activations")), "activations.png"
    if kind == "saliency":
        pictures = visualize.saliency(net, images, target=args.target, layer=args.layer, method=args.method,
                                      samples=args.samples, overlay=not args.no_overlay, seed=args.seed)
        rows = {}
        for name, img in pictures.items():
            if name.startswith("saliency_"):
                rows[name[:-4].replace("saliency_", "", 1).replace("_", " ")] = _photo(net, name, images)
            rows[name[:-4].replace("_", " ")] = img
        return pictures, visualize.montage(rows, columns=3), "saliency.png"
    if kind == "patches":
        units = _units(args.unit, net)
        pictures, captions = {}, {}
        for layer, channel in units:
            (name, figure), = visualize.top_patches(net, images, layer=layer, channel=channel, k=args.k).items()
            pictures[name] = figure
            captions[f"{layer}:{name[:-4].rsplit('_', 1)[1]}"] = figure  # the real layer name, and its channel
        return pictures, visualize.montage(captions, columns=1), "patches.png"
    if kind == "class":
        pictures = visualize.class_model(net, args.targets, steps=args.steps or 256, size=args.size, seed=args.seed,
                                         progress=progress, batch_size=args.batch_size)
        captions = dict(zip(args.targets, pictures.values()))  # as asked: "bell pepper", "husky"
        return pictures, visualize.montage(captions, columns=min(6, len(pictures))), \
            "class_models.png"
    pictures = visualize.feature(net, args.objectives, steps=args.steps or 256, size=args.size or 128,
                                 seed=args.seed, progress=progress, batch_size=args.batch_size)
    captions = dict(zip(args.objectives, pictures.values()))  # as written: "_blocks.3:15", not "blocks 3 15"
    return pictures, visualize.montage(captions, columns=min(6, len(pictures))), "features.png"


def _photo(net, name, images):
    """The preprocessed photo a saliency picture belongs to (for the combined figure)."""
    from convcore.visualize._maps import _images

    paths, labels = _images(images)
    label = next((lb for lb in sorted(labels, key=len, reverse=True) if name.startswith(f"saliency_{lb}_")), None)
    x = net.load(paths[labels.index(label)]) if label is not None else np.zeros((3, net.size, net.size), np.float32)
    return (np.transpose(net.pixels(x), (1, 2, 0)) * 255 + 0.5).astype(np.uint8)


def _units(specs, net):
    from convcore import visualize

    if not specs:
        return [(layer, None) for layer in visualize.layers_at(net)]
    units = []
    for spec in specs:
        layer, sep, channel = spec.rpartition(":")
        if sep and channel.strip().isdigit():
            units.append((layer, int(channel)))
        else:
            units.append((spec, None))
    return units
