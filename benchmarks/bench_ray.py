"""Throughput of `convcore classify --ray` (1 and 2 actors) against the single-process command, and what Ray adds
per image.

Usage:
    python benchmarks/bench_ray.py [--images 120,600] [--model efficientnet_lite0] [--repeat 3] [--json FILE]

Photos are made from the bundled ones (seeded crops, flips and color jitter at 320 to 480 pixels, JPEG quality 90),
two folders of N1 < N2 images. Every configuration runs the real command in a fresh process (`--ray` starts its own
local Ray instance with the machine's CPUs) on both folders, the configurations interleaved; the best of `repeat`
wall times of each is kept, so

    images/s = (N2 - N1) / (T2 - T1)            fixed cost = T1 - N1 / (images/s)

separate the steady rate from the start-up (imports, model load and compile; with Ray also starting the local
instance, its actors and their Plans). "Ray's overhead per image" is the 1-actor time per image minus the time the
same work (the actor's `Classifier`: decode, preprocess, model, top-k, on 1 thread, batch 8) takes in this process
without Ray: scheduling, the object store, serialisation and the reading tasks, as felt by an actor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_images(folder, count):
    from PIL import Image

    from convcore import data
    from convcore import transforms as T

    photos = [T.load_image(p) for p in data.sample_images()]
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng(i)
        h, w = int(rng.integers(320, 481)), int(rng.integers(320, 481))
        augment = T.Compose([T.RandomResizedCrop((h, w), scale=(0.5, 1.0), seed=rng),
                             T.RandomHorizontalFlip(seed=rng), T.ColorJitter(0.2, 0.2, 0.2, 0.02, seed=rng)])
        Image.fromarray(augment(photos[i % len(photos)])).save(os.path.join(folder, f"img{i:05d}.jpg"), quality=90)


def run_command(argv):
    """Wall seconds of `convcore classify ...` in a fresh process, and its JSON summary."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "convcore", "classify", *argv, "--json", "--no-progress"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"convcore classify {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])["summary"]
    return seconds, summary


class ActorWork:
    """The actor's work without Ray: its Classifier on batches of the encoded files, 1 thread, in this process."""

    def __init__(self, folder, model, batch):
        import convcore.ray

        self.classifier = convcore.ray.Classifier(model, num_threads=1)
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
        self.count = len(files)
        self.batches = []
        for i in range(0, len(files), batch):
            chunk = files[i:i + batch]
            cells = np.empty(len(chunk), dtype=object)
            for j, path in enumerate(chunk):
                with open(path, "rb") as f:
                    cells[j] = f.read()
            self.batches.append({"bytes": cells, "path": np.array(chunk)})

    def ms_per_image(self):
        start = time.perf_counter()
        for b in self.batches:
            self.classifier(b)
        return (time.perf_counter() - start) * 1000 / self.count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="120,600", help="N1,N2: the two folder sizes (default 120,600)")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command per folder (best kept)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    n1, n2 = (int(v) for v in args.images.split(","))
    cpus = len(os.sched_getaffinity(0))

    work = tempfile.mkdtemp(prefix="convcore-bench-ray-")
    folders = {n: os.path.join(work, f"images{n}") for n in (n1, n2)}
    for n, folder in folders.items():
        make_images(folder, n)
    common = ["--model", args.model, "--batch-size", str(args.batch_size)]
    configs = {
        "single process (all CPUs)": [],
        "single process, 1 thread": ["--threads", "1"],
        "Ray, 1 actor x 1 CPU": ["--ray", "--actors", "1"],
        "Ray, 2 actors x 1 CPU": ["--ray", "--actors", "2"],
    }
    results = {}
    print(f"{cpus} CPUs, {args.model}, batch {args.batch_size}, folders of {n1} and {n2} images; "
          f"best of {args.repeat} runs each (interleaved); load average before: {os.getloadavg()[0]:.2f}", flush=True)
    walls = {name: {n: float("inf") for n in folders} for name in configs}
    actor_work, work_ms = ActorWork(folders[n1], args.model, args.batch_size), float("inf")
    for _ in range(args.repeat):  # interleaved, so that a burst of other work does not hit one configuration only
        for name, extra in configs.items():
            for n, folder in folders.items():
                seconds, summary = run_command([folder, *common, *extra])
                assert summary["images"] == n, summary
                walls[name][n] = min(walls[name][n], seconds)
        work_ms = min(work_ms, actor_work.ms_per_image())
    for name in configs:
        walls_n = walls[name]
        rate = (n2 - n1) / (walls_n[n2] - walls_n[n1])
        results[name] = {"images_per_second": round(rate, 1), "ms_per_image": round(1000 / rate, 2),
                         "fixed_seconds": round(walls_n[n1] - n1 / rate, 2),
                         "wall_seconds": {str(n): round(t, 2) for n, t in walls_n.items()}}
        print(f"  {name:28s} {rate:7.1f} images/s  ({1000 / rate:6.2f} ms/image), start-up "
              f"{walls_n[n1] - n1 / rate:5.2f} s  [wall {walls_n[n1]:.2f} s / {walls_n[n2]:.2f} s]", flush=True)
    ray1 = results["Ray, 1 actor x 1 CPU"]["ms_per_image"]
    results["classifier_without_ray_ms_per_image"] = round(work_ms, 2)
    results["ray_overhead_ms_per_image"] = round(ray1 - work_ms, 2)
    print(f"  the actor's work without Ray (1 thread): {work_ms:.2f} ms/image; Ray adds {ray1 - work_ms:.2f} ms/image "
          f"({100 * (ray1 - work_ms) / work_ms:.0f}%) with 1 actor", flush=True)
    print(f"  load average after: {os.getloadavg()[0]:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpus": cpus, "model": args.model, "images": [n1, n2], **results}, f, indent=2)


if __name__ == "__main__":
    main()
