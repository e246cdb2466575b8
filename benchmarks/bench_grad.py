"""Gradient cost: one input-gradient step (`convcore.gradients.GradientProgram`: forward keeping what the backward
rules read, then backward to the input) beside the model's compiled forward pass (`convcore.compile`), in one run.

Usage:
    python benchmarks/bench_grad.py [--models resnet50,efficientnet_lite0] [--batch 1] [--threads 1,2] [--repeat 15]
                                    [--size 224] [--profile]

Both are timed interleaved (plan, step, plan, step, ...) after warm-up, so load from other work on a shared machine
hits both alike; the report gives the minimum and median of each and their ratio. --profile adds the step's split:
for a step run as one Plan (`convcore.gradients.plan`), the forward and backward ops by kernel; otherwise the
forward pass and each op's backward rule. Random weights with a fixed seed; the objective is logit 0 summed over the
batch.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import numpy as np

import convcore
from convcore import models
from convcore.gradients import GradientProgram
from convcore.ops import Backward


def profile_step(program, x, repeat):
    """Seconds per step spent in each op's backward rule, and in the whole step."""
    spent = collections.defaultdict(float)
    rules = dict(program.rules)
    for name, rule in rules.items():
        if rule is None:
            continue

        def timed(dy, call, rule=rule, name=name):
            start = time.perf_counter()
            result = rule.rule(dy, call)
            spent[name] += time.perf_counter() - start
            return result

        program.rules[name] = Backward(timed, rule.saves)
    start = time.perf_counter()
    for _ in range(repeat):
        program(x)
    total = (time.perf_counter() - start) / repeat
    program.rules.update(rules)
    return {k: v / repeat for k, v in spent.items()}, total


def profile_plan(program, x, repeat):
    """(forward seconds, {backward kernel kind: seconds}) of a one-Plan step, from the Plan's own per-op timer."""
    rows = program.profile(x, repeat)
    start = program._step.forward_ops
    forward = sum(r[4] for r in rows[:start])
    kinds = collections.defaultdict(float)
    for _, kind, _, _, seconds in rows[start:]:
        kinds[kind.split(" (")[0]] += seconds
    return forward, kinds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(f"convcore {convcore.__version__}, isa {convcore.get_isa()}")
    for name in args.models.split(","):
        model = models.get_model(name)
        shape = (args.batch, 3, args.size, args.size)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for threads in [int(t) for t in args.threads.split(",")]:
            convcore.set_num_threads(threads)
            start = time.perf_counter()
            plan = convcore.compile(model, shape)
            compile_plan = time.perf_counter() - start
            start = time.perf_counter()
            program = GradientProgram(model, shape, 0)
            program(x)
            build = time.perf_counter() - start
            for _ in range(2):
                plan(x)
                program(x)
            forward, step = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                plan(x)
                forward.append(time.perf_counter() - t)
                t = time.perf_counter()
                program(x)
                step.append(time.perf_counter() - t)
            f_min, s_min = min(forward), min(step)
            mode = "one Plan" if program.one_plan else "node by node"
            f_med, s_med = statistics.median(forward), statistics.median(step)
            print(f"{name} batch {args.batch} {args.size}x{args.size}, {threads} thread(s): compiled forward "
                  f"{f_min * 1e3:.1f} ms (median {f_med * 1e3:.1f}), gradient step {s_min * 1e3:.1f} ms (median "
                  f"{s_med * 1e3:.1f}, {mode}): {s_min / f_min:.2f}x (medians {s_med / f_med:.2f}x); compile "
                  f"{compile_plan:.1f} s, program build + first step {build:.1f} s")
            if args.profile and program.one_plan:
                forward, kinds = profile_plan(program, x, max(3, args.repeat // 3))
                print(f"  one Plan: forward {forward * 1e3:.1f} ms, backward {sum(kinds.values()) * 1e3:.1f} ms: "
                      + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])
                                  if v > 5e-5))
            elif args.profile:
                spent, total = profile_step(program, x, max(3, args.repeat // 3))
                rules = sum(spent.values())
                print(f"  step {total * 1e3:.1f} ms: forward and bookkeeping {(total - rules) * 1e3:.1f} ms, rules "
                      + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
                                  if v > 1e-4))


if __name__ == "__main__":
    main()
