"""Two builds of convcore side by side, in one run: eager layer kernels and compiled zoo models, rounds alternating.

Usage:
    python benchmarks/bench_builds.py --base DIR [--rounds 5] [--threads 2] [--models resnet50,mobilenet_v2]
                                      [--batch 1,8] [--part eager,plan]

`DIR` holds another build's `convcore` package (an unpacked wheel: `python -m zipfile -e convcore-*.whl DIR`, or
`pip install --no-deps --target DIR .` on another commit); the other build is the `convcore` this interpreter
imports. Each round runs every part once per build, each in a fresh process (`python -S`, so that an editable
install's import hook cannot pick the build), builds alternating; a row reports the best round of each build (the
median of `--repeat` calls within a round). This is how a change to kernels shows it made nothing slower: compare
the two columns of one run, never runs.
"""

from __future__ import annotations

import argparse
import json
import os
import site
import statistics
import subprocess
import sys
import time

# Eager layers: (name, op, arguments). Convolutions are the shapes of bench_ops.py (real zoo layers).
CONV = [
    ("conv 3x3 64->64 @56", (64, 56, 56), (64, 3, 1, 1, 1, 1)),
    ("conv 3x3 256->256 @14", (256, 14, 14), (256, 3, 1, 1, 1, 1)),
    ("conv 1x1 256->64 @56", (256, 56, 56), (64, 1, 1, 0, 1, 1)),
    ("conv 1x1 960->160 @7", (960, 7, 7), (160, 1, 1, 0, 1, 1)),
    ("conv 3x3 s2 128->128 @56", (128, 56, 56), (128, 3, 2, 1, 1, 1)),
    ("conv 3x3 d2 64->64 @56", (64, 56, 56), (64, 3, 1, 2, 2, 1)),
    ("conv 7x7 s2 3->64 @224", (3, 224, 224), (64, 7, 2, 3, 1, 1)),
    ("conv 3x3 g32 256->256 @28", (256, 28, 28), (256, 3, 1, 1, 1, 32)),
    ("dw 3x3 144 @56", (144, 56, 56), (144, 3, 1, 1, 1, 144)),
    ("dw 3x3 s2 96 @112", (96, 112, 112), (96, 3, 2, 1, 1, 96)),
    ("dw 5x5 s2 240 @28", (240, 28, 28), (240, 5, 2, 2, 1, 240)),
    ("dw 3x3 960 @7", (960, 7, 7), (960, 3, 1, 1, 1, 960)),
]
LINEAR = [("linear 2048->1000 batch 1", 1, 2048, 1000), ("linear 4096->4096 batch 8", 8, 4096, 4096),
          ("linear 1280->1000 batch 32", 32, 1280, 1000)]
MODELS = ["resnet50", "mobilenet_v2", "mnasnet1_0", "efficientnet_b0", "densenet121", "googlenet"]


def timeit(fn, repeat, warmup=0.2):
    t_end = time.perf_counter() + warmup
    while time.perf_counter() < t_end:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# ----------------------------------------------------------------------------------------------------- workers
def eager_rows(threads, repeat):
    import numpy as np

    import convcore
    import convcore.functional as F

    convcore.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = {}
    for name, (c, h, w), (k, r, s, p, d, g) in CONV:
        x = rng.standard_normal((1, c, h, w), dtype=np.float32)
        wt = rng.standard_normal((k, c // g, r, r), dtype=np.float32) * 0.1
        b = rng.standard_normal(k, dtype=np.float32)
        out = F.conv2d(x, wt, b, s, p, d, g)
        rows[name] = timeit(lambda: F.conv2d(x, wt, b, s, p, d, g, out=out), repeat)  # noqa: B023
    for name, m, f, k in LINEAR:
        x = rng.standard_normal((m, f), dtype=np.float32)
        wt = rng.standard_normal((k, f), dtype=np.float32) * 0.05
        b = rng.standard_normal(k, dtype=np.float32)
        rows[name] = timeit(lambda: F.linear(x, wt, b), repeat)  # noqa: B023
    return rows


def plan_rows(threads, repeat, models, batches):
    import numpy as np

    import convcore
    from convcore import models as zoo

    convcore.set_num_threads(threads)
    rows = {}
    for name in models:
        np.random.seed(0)
        model = zoo.get_model(name).eval()
        for n in batches:
            plan = convcore.compile(model, (n, 3, 224, 224))
            x = np.random.default_rng(1).standard_normal((n, 3, 224, 224)).astype(np.float32)
            out = [np.empty(s, np.float32) for s in plan.output_shapes(n)]
            rows[f"{name} batch {n}"] = timeit(lambda: plan.run(x, out=out), repeat) / n  # noqa: B023
    return rows


def worker(args):
    if args.worker == "eager":
        rows = eager_rows(args.threads, args.repeat)
    else:
        rows = plan_rows(args.threads, max(3, args.repeat // 4), args.models.split(","),
                         [int(b) for b in args.batch.split(",")])
    print(json.dumps(rows))


# ------------------------------------------------------------------------------------------------------ driver
def run(build, part, args):
    """One worker process on `build` (a folder with a convcore package, or None: this interpreter's)."""
    paths = ([build] if build else []) + site.getsitepackages()
    code = (f"import sys; sys.path[:0] = {paths!r}; sys.argv = {[__file__, '--worker', part] + args.passthrough!r}; "
            f"exec(compile(open({os.path.abspath(__file__)!r}).read(), {__file__!r}, 'exec'))")
    cmd = [sys.executable] + (["-S"] if build else []) + ["-c", code]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{part} worker ({build or 'this build'}) failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="folder holding the other build's convcore package")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--part", default="eager,plan")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.passthrough = ["--threads", str(args.threads), "--repeat", str(args.repeat), "--models", args.models,
                        "--batch", args.batch]
    if args.worker:
        return worker(args)
    if not args.base:
        ap.error("--base: required (a folder holding the other build's convcore package)")
    builds = {"base": os.path.abspath(args.base), "this": None}
    best = {}
    for r in range(args.rounds):
        for part in args.part.split(","):
            for label, build in builds.items():
                for row, ms in run(build, part, args).items():
                    best.setdefault(row, {}).setdefault(label, []).append(ms)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'row':32s} {'base ms':>9s} {'this ms':>9s} {'this/base':>9s}   (best of {args.rounds} rounds; ms per "
          f"image for models)")
    for row, by in best.items():
        b, t = min(by["base"]), min(by["this"])
        print(f"{row:32s} {b:9.3f} {t:9.3f} {t / b:9.2f}")


if __name__ == "__main__":
    main()
