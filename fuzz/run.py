"""The long fuzz campaign as one command: every atheris target for a share of the time, then the hypothesis
properties of the functional API against torch with many examples; prints what was tried and what was found.

    flock /tmp/convcore-cpu.lock python fuzz/run.py --minutes 60      # the long run (see fuzz/README.md)
    python fuzz/run.py --minutes 1 --targets onnx                     # a quick look at one target

Corpora grow in fuzz/corpus/<target>/ (kept between runs, not committed); each finding is saved under
fuzz/findings/ (crash-*, timeout-*, oom-*): reproduce one with `python fuzz/fuzz_<target>.py FILE`, fix it,
then move it to fuzz/regressions/<target>/, where the test suite replays it forever after.
"""

import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGETS = ("onnx", "checkpoint", "image")
# libFuzzer limits per input: a hang is > 30 s, a blow-up > 3 GB resident (the bounds in docs/limits.md keep every
# legitimate input far below both).
LIMITS = ["-timeout=30", "-rss_limit_mb=3072", "-max_len=65536", "-print_final_stats=1"]


def fuzz_target(target, seconds, seed):
    """Run one target for `seconds`, restarting after each finding; returns (inputs tried, findings, new files)."""
    corpus = os.path.join(HERE, "corpus", target)
    findings = os.path.join(HERE, "findings", target)
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(findings, exist_ok=True)
    tried, found, end = 0, [], time.monotonic() + seconds
    while time.monotonic() < end - 5 and len(found) < 20:
        before = set(os.listdir(findings))
        left = int(end - time.monotonic())
        cmd = [sys.executable, os.path.join(HERE, f"fuzz_{target}.py"), f"-max_total_time={left}",
               f"-seed={seed}", f"-artifact_prefix={findings}/", *LIMITS, corpus, os.path.join(HERE, "seeds", target)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace")
        log = proc.stdout + proc.stderr
        runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log) or re.findall(r"#(\d+)\s", log)
        tried += int(runs[-1]) if runs else 0
        new = sorted(set(os.listdir(findings)) - before)
        for name in new:
            found.append(os.path.join(findings, name))
            tail = "\n".join(line for line in log.splitlines()[-40:] if "Instrumenting" not in line)
            with open(os.path.join(findings, name + ".log"), "w") as f:
                f.write(tail)
        if proc.returncode == 0 or not new:
            break
        seed += 1
    return tried, found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60, help="total time (default 60)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS) + ["properties"],
                        choices=list(TARGETS) + ["properties"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--examples", type=int, default=3000,
                        help="hypothesis examples per property test (default 3000)")
    args = parser.parse_args()
    atheris_targets = [t for t in args.targets if t in TARGETS]
    share = args.minutes * 60 / (len(atheris_targets) + ("properties" in args.targets) * 0.5 or 1)
    report = []
    for target in atheris_targets:
        start = time.monotonic()
        tried, found = fuzz_target(target, share, args.seed)
        report.append((target, tried, time.monotonic() - start, found))
        print(f"{target}: {tried} inputs in {time.monotonic() - start:.0f} s, {len(found)} finding(s)", flush=True)
        for path in found:
            print(f"  {os.path.relpath(path, ROOT)}", flush=True)
    if "properties" in args.targets:
        start = time.monotonic()
        env = {**os.environ, "CONVCORE_FUZZ_EXAMPLES": str(args.examples), "CONVCORE_FUZZ_SEED": str(args.seed)}
        files = ["tests/hardening/test_functional_properties.py", "tests/hardening/test_plan_properties.py"]
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files], cwd=ROOT,
                              env=env, capture_output=True, text=True)
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
        tests = sum(len(re.findall(r"^def test_", open(os.path.join(ROOT, f)).read(), re.M)) for f in files)
        print(f"properties: up to {args.examples} examples x {tests} tests in {time.monotonic() - start:.0f} s: "
              f"{summary}", flush=True)
        if proc.returncode:
            print(proc.stdout[-6000:], flush=True)
        report.append(("properties", None, time.monotonic() - start, [] if proc.returncode == 0 else ["failed"]))
    return 1 if any(found for *_, found in report) else 0


if __name__ == "__main__":
    sys.exit(main())
