"""`convcore layers MODEL`: every layer of a model, with its output shape, parameters and MACs: the names `convcore
visualize` and the gradient objectives accept."""

from __future__ import annotations

import fnmatch
import json

from ._common import UsageError, add_threads_argument, format_table, load_model, set_threads


def add_arguments(parser):
    parser.add_argument("model", metavar="NAME|FILE.onnx", help="zoo model name or ONNX file")
    parser.add_argument("patterns", nargs="*", metavar="PATTERN",
                        help="shell-style filters on the layer names, e.g. '_blocks.1*' (default: every layer)")
    parser.add_argument("--input-size", type=int, nargs="+", metavar="PIXELS",
                        help="H W, C H W or N C H W (default: the model's registered input size)")
    parser.add_argument("--blocks", action="store_true",
                        help="only the containers (blocks, stages), not every op inside them")
    parser.add_argument("--json", action="store_true", help="print one JSON object per layer")
    add_threads_argument(parser)


def run(args):
    from convcore import models

    set_threads(args.threads)
    loaded = load_model(args.model, need_weights=False)
    size = args.input_size
    if size is not None and (len(size) not in (2, 3, 4) or min(size) < 1):
        raise UsageError(f"--input-size: expected H W, C H W or N C H W positive integers (got "
                         f"{' '.join(map(str, size))})")
    if size is not None and len(size) == 2:
        size = [loaded.input_size[0], *size]
    try:
        rows = models.layers(loaded.module, size or loaded.input_size)
    except ValueError as exc:
        raise UsageError(f"--input-size: {exc}") from None
    if args.blocks:
        rows = [r for r in rows if r.op == "block"]
    if args.patterns:
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r.name, p) for p in args.patterns)]
        if not rows:
            raise UsageError(f"no layer of {loaded.name} matches {' '.join(args.patterns)}")
    if args.json:
        for r in rows:
            print(json.dumps({"name": r.name, "op": r.op, "output_shape": list(r.output_shape), "params": r.params,
                              "macs": r.macs}))
        return 0
    table = [(r.name, r.op, "x".join(map(str, r.output_shape[1:])), f"{r.params:,}", f"{r.macs / 1e6:,.1f}")
             for r in rows]
    print(format_table(("layer", "op", "output (C x H x W)", "params", "MMACs"), table, "llrrr"))
    print(f"({loaded.name}: {len(rows)} layers; objectives take 'layer', 'layer:channel' or "
          f"'layer:channel@y,x', e.g. convcore visualize feature {rows[-1].name}:0)")
    return 0
