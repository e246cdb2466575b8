"""`convcore models`: the zoo as a table (name, family, parameters, GFLOPs, input size, and its published weights:
the DEFAULT's name and top-1 accuracy, and whether they are on this machine; --json lists every published set with its
URL, preprocessing and accuracy)."""

from __future__ import annotations

import fnmatch
import json

from ._common import UsageError, add_threads_argument, log, set_threads

_HEADERS = ("name", "family", "params (M)", "GFLOPs", "input", "weights")
_ALIGN = "llrrll"


def add_arguments(parser):
    parser.add_argument("patterns", nargs="*", metavar="PATTERN",
                        help="shell-style name filters, e.g. 'resnet*' (default: every model)")
    parser.add_argument("--brief", action="store_true",
                        help="skip the parameter and GFLOP counts (they build and trace each model once)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model")
    add_threads_argument(parser)


def run(args):
    from convcore import data, models

    set_threads(args.threads)
    names = models.list_models()
    if args.patterns:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in args.patterns)]
        if not names:
            raise UsageError(f"no model matches {' '.join(args.patterns)}; see 'convcore models --brief'")
    # Rows print as they are computed (counting GFLOPs builds and traces each model, no kernel runs), at a fixed
    # width.
    widths = (max(len(n) for n in names), 18, 10, 8, 11, 0)
    if not args.json:
        print(_row(_HEADERS, widths), flush=True)
        print(_row(["-" * max(w, len(h)) for w, h in zip(widths, _HEADERS)], widths), flush=True)
    for i, name in enumerate(names):
        info = models.get_model_info(name)
        published = data.weights_summary(name)
        record = {"name": name, "family": info.family, "input_size": list(info.input_size),
                  "weights": data.weights_source(name), "weights_file": published["local"],
                  "published_weights": published["available"]}
        if not args.brief:
            if len(names) > 1:
                log(f"models: counting {name} ({i + 1}/{len(names)})")
            stats = models.summary(name)
            record.update(params=int(stats["params"]), gflops=float(stats["gflops"]))
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            params = f"{record['params'] / 1e6:.2f}" if "params" in record else "-"
            gflops = f"{record['gflops']:.3f}" if "gflops" in record else "-"
            size = "x".join(str(s) for s in info.input_size)
            print(_row((name, info.family, params, gflops, size, record["weights"] or "-"), widths), flush=True)
    return 0


def _row(values, widths):
    cells = []
    for value, width, header, align in zip(values, widths, _HEADERS, _ALIGN):
        width = max(width, len(header))
        cells.append(str(value).ljust(width) if align == "l" else str(value).rjust(width))
    return "  ".join(cells).rstrip()
