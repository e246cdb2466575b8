"""Honest timings: `classify --json` names the batch's time and size beside the per-image share; `convcore bench`
reports compile time, first-call latency, p50 / p90 / p99, a throughput mode (--streams) and a JSON report; a plan's
profile is each op's fastest run (min over repeats), not its mean."""

import json

import pytest

import convcore
from convcore import data, models
from convcore.plan.lower import Segment

from cli_helpers import run, json_lines

pytest.importorskip("PIL")


def test_classify_json_names_the_batch_time_and_the_per_image_share(capsys, mobilenet_weights):
    photos = data.sample_images()
    status, out, err = run(capsys, "classify", *photos, "--model", "mobilenet_v2", "--weights", mobilenet_weights,
                           "--batch-size", "2", "--json", "--topk", "1")
    assert status == 0, err
    *records, summary = json_lines(out)
    assert [r["batch_images"] for r in records] == [2, 2, 1]
    assert "latency_ms" not in records[0]
    assert records[0]["batch_ms"] == records[1]["batch_ms"] > 0  # one batch, one time
    for r in records:
        assert r["ms_per_image_in_batch"] == pytest.approx(r["batch_ms"] / r["batch_images"], abs=1e-3)
    summary = summary["summary"]
    assert summary["compile_s"] > 0 and summary["images"] == 3
    status, out, _ = run(capsys, "classify", photos[0], "--model", "mobilenet_v2", "--weights", mobilenet_weights,
                         "--topk", "1")
    assert status == 0 and " ms/image, batch of 1 in " in out.splitlines()[0]


def test_bench_reports_compile_first_call_and_percentiles(capsys, tmp_path):
    report = tmp_path / "bench.json"
    status, out, err = run(capsys, "bench", "lenet5", "mobilenet_v2", "--batch", "1,2", "--min-time", "0.05",
                           "--warmup", "0", "--json", "--threads", "1", "--report", str(report))
    assert status == 0, err
    records = json_lines(out)
    assert [(r["model"], r["batch"]) for r in records] == [("lenet5", 1), ("lenet5", 2), ("mobilenet_v2", 1),
                                                           ("mobilenet_v2", 2)]
    for r in records:
        assert r["compile_s"] > 0 and r["first_call_ms"] > 0 and r["runs"] >= 3 and r["streams"] == 1
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["ms_per_image"] == pytest.approx(r["p50_ms"] / r["batch"], abs=2e-3)
        assert r["images_per_s"] == pytest.approx(r["batch"] * 1000 / r["p50_ms"], rel=0.02)  # p50 rounded to 1 us
    saved = json.loads(report.read_text())
    assert saved["results"] == records and saved["settings"]["threads"] == 1
    assert saved["machine"]["isa"] == convcore.get_isa() and "p50_ms" in saved["notes"]


def test_bench_throughput_mode(capsys):
    status, out, err = run(capsys, "bench", "mobilenet_v2", "--batch", "1", "--streams", "2", "--threads", "2",
                           "--min-time", "0.2", "--warmup", "0")
    assert status == 0, err
    lines = out.splitlines()
    assert "2 streams x 1 threads" in lines[2] and "throughput mode, 2 streams" in lines[-1]
    status, out, err = run(capsys, "bench", "lenet5", "--batch", "1", "--streams", "2", "--min-time", "0.05",
                           "--json", "--peers")
    [record] = json_lines(out)
    assert status == 0 and record["streams"] == 2 and record["images_per_s"] > 0 and record["runs"] >= 6
    assert run(capsys, "bench", "lenet5", "--streams", "2", "--eager")[0] == 2
    assert run(capsys, "bench", "lenet5", "--streams", "0")[0] == 2
    assert run(capsys, "bench", "lenet5", "--report", "/no/such/folder/r.json")[0] == 2


class _ScriptedProfile:
    """A segment's C++ plan whose per-op times come from a script (the real plan still runs)."""

    def __init__(self, plan, times):
        self.plan, self.times = plan, list(times)

    def profile(self, ins, outs, threads, repeats):
        assert repeats == 1  # one timed run per repeat: the statistic is taken over them
        seconds = self.times.pop(0)
        return [(*row[:4], seconds) for row in self.plan.profile(ins, outs, threads, 1)]

    def __getattr__(self, name):
        return getattr(self.plan, name)


def test_profile_takes_each_ops_fastest_run():
    plan = convcore.compile(models.get_model("lenet5"))
    segment = next(step for step in plan._steps if isinstance(step, Segment))
    real = segment.plan
    segment.plan = _ScriptedProfile(real, [0.005, 0.001, 0.003])
    assert {row[4] for row in plan.profile(repeats=3)} == {0.001}
    segment.plan = _ScriptedProfile(real, [0.005, 0.001, 0.003])
    assert all(row[4] == pytest.approx(0.003) for row in plan.profile(repeats=3, statistic="mean"))
    segment.plan = real
    assert "each op's min of 2 runs" in plan.summary(repeats=2, print_out=False)
    with pytest.raises(ValueError, match="statistic: expected 'min' or 'mean'"):
        plan.profile(statistic="median")
