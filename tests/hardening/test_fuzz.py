"""The fuzz harness in the suite (fuzz/README.md): every input a campaign ever found is replayed, and each atheris
target runs a short seeded campaign (seconds). The long run is `python fuzz/run.py --minutes 60`."""

import importlib.util
import os
import subprocess
import sys

import pytest

from .helpers import ROOT, run_child

FUZZ = ROOT / "fuzz"
TARGETS = ("onnx", "checkpoint", "image")
REGRESSIONS = sorted((t, name) for t in TARGETS for name in os.listdir(FUZZ / "regressions" / t))
# Inputs per target in the short run: a few seconds each on one core (the targets run ~1000-7000 inputs a second).
SHORT_RUNS = {"onnx": 3000, "checkpoint": 15000, "image": 15000}


@pytest.mark.parametrize("target, name", REGRESSIONS, ids=[f"{t}/{n}" for t, n in REGRESSIONS])
def test_replay_finding(target, name):
    """A finding, fixed, stays fixed: the target's contract holds on it (in a child: a crash fails this test only)."""
    code, out, err = run_child(f"""
        import sys, warnings
        sys.path.insert(0, {str(FUZZ)!r})
        warnings.simplefilter("ignore")
        import fuzz_{target}
        with open({str(FUZZ / "regressions" / target / name)!r}, "rb") as f:
            data = f.read()
        limit_address_space(3072)  # a blow-up is a MemoryError here, which breaks the contract
        fuzz_{target}.test_one_input(data)
        report(ok=True)
    """)
    assert code == 0 and out == {"ok": True}, err[-3000:]


@pytest.mark.parametrize("name", sorted(os.listdir(FUZZ / "seeds" / "onnx")))
def test_onnx_seed_meets_the_contract(name):
    """Every ONNX seed as it is (without atheris): the dynamic-batch seeds are run at a second batch against the
    model imported at that batch, the integer-input ones with their inputs bound (fuzz/fuzz_onnx.py)."""
    code, out, err = run_child(f"""
        import sys, warnings
        sys.path.insert(0, {str(FUZZ)!r})
        warnings.simplefilter("ignore")
        import fuzz_onnx
        with open({str(FUZZ / "seeds" / "onnx" / name)!r}, "rb") as f:
            fuzz_onnx.test_one_input(f.read())
        report(ok=True)
    """)
    assert code == 0 and out == {"ok": True}, err[-3000:]


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
@pytest.mark.parametrize("target", TARGETS)
def test_short_seeded_campaign(target, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    cmd = [sys.executable, str(FUZZ / f"fuzz_{target}.py"), f"-runs={SHORT_RUNS[target]}", "-seed=1",
           "-max_total_time=60", "-timeout=20", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/",
           str(corpus), str(FUZZ / "seeds" / target)]
    # Through a shell that forks once more: a child exec'd straight from this process inherits its peak RSS
    # (ru_maxrss survives fork + exec), which libFuzzer's -rss_limit_mb reads: after the suite's large tests, every
    # input would look like an out-of-memory.
    cmd = ["/bin/sh", "-c", '"$@"; exit $?', "sh", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "Instrumenting" not in line)
    assert proc.returncode == 0, log[-4000:]
    assert "DONE" in log and not any(p.name.startswith(("crash-", "timeout-", "oom-")) for p in tmp_path.iterdir())
