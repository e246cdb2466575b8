"""Fixtures of the Ray tests: a two-node Ray cluster on this machine, 200+ distinct images made from the bundled
photos (and a few that cannot be decoded), and what the single-process `convcore classify` says about them.

Every test module here starts with `pytest.importorskip("ray.data")`: without Ray they are skipped with that reason.
"""

import contextlib
import io
import json
import re

import numpy as np
import pytest

from convcore import data

from ray_helpers import CORRUPT, IMAGES


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """IMAGES photos made distinct by seeded crops, flips, rotations and color jitter (small: 96 to 160 pixels), as
    JPEG and PNG in nested folders, plus the CORRUPT files."""
    from PIL import Image

    from convcore import transforms as T

    root = tmp_path_factory.mktemp("ray-images")
    photos = [T.load_image(p) for p in data.sample_images()]
    for i in range(IMAGES):
        rng = np.random.default_rng(i)
        size = int(rng.integers(96, 161))
        augment = T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0), seed=rng),
                             T.RandomHorizontalFlip(seed=rng), T.RandomRotation(10, seed=rng),
                             T.ColorJitter(0.3, 0.3, 0.3, 0.05, seed=rng)])
        img = augment(photos[i % len(photos)])
        folder = root / f"part{i % 4}" / ("deep" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        if i % 5 == 0:
            Image.fromarray(img).save(folder / f"img{i:03d}.png")
        else:
            Image.fromarray(img).save(folder / f"img{i:03d}.jpg", quality=90)
    (root / "corrupt").mkdir()
    jpeg = open(data.sample_images()[1], "rb").read()
    for name, content in CORRUPT.items():
        (root / name).write_bytes(jpeg[:len(jpeg) // 3] if content is None else content)
    return root


@pytest.fixture(scope="session")
def reference(image_folder, tmp_path_factory):
    """The single-process command on image_folder: (records in its order, {skipped path: error})."""
    from convcore.cli import main

    out = tmp_path_factory.mktemp("ray-reference") / "reference.jsonl"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main(["classify", str(image_folder), "--no-progress", "--json", "--out", str(out)])
    assert status == 0, stderr.getvalue()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    skipped = dict(re.findall(r"^convcore: skipped (.+?): (.+)$", stderr.getvalue(), re.M))
    assert len(records) == IMAGES and len(skipped) == len(CORRUPT)
    return records, skipped


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of two nodes on this machine (a head and a second node, each its own raylet and object store),
    this process connected as the driver; stopped after the module, so the rest of the suite runs without it. Each
    node has 2 logical CPUs and one 'convcore_slot', so that two actors asking for a slot each run on different
    nodes."""
    import ray
    from ray.cluster_utils import Cluster

    node = dict(num_cpus=2, resources={"convcore_slot": 1}, object_store_memory=160 * 2**20)
    cluster = Cluster(initialize_head=True, head_node_args=dict(node, include_dashboard=False))
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING")
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
