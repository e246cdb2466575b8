"""`convcore classify --ray` arguments that need no Ray cluster (the runs themselves: tests/distributed)."""

import sys

import pytest


from cli_helpers import run


@pytest.mark.parametrize("argv, words", [
    (["classify", "--address", "auto"], "--address: applies with --ray"),
    (["classify", "--actors", "2"], "--actors: applies with --ray"),
    (["classify", "--out", "results.parquet"], "Parquet output needs --ray"),
    (["classify", "--ray", "--actors", "0"], "--actors"),
    (["classify", "--ray", "--threads", "0"], "--threads"),
])
def test_ray_options_are_checked(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("convcore: error:") and words in err


def test_ray_without_ray_installed_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.delitem(sys.modules, "convcore.ray", raising=False)
    status, out, err = run(capsys, "classify", "--ray")
    assert status == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "pip install 'convcore[ray]'" in err


def test_help_lists_the_ray_options(capsys):
    status, out, _ = run(capsys, "classify", "--help")
    assert status == 0 and "--ray" in out and "--address" in out and "--actors" in out
