"""What `convcore classify` shares between its single-process and Ray paths: the default model, the images a command
line names, and the records and summary it prints."""

from __future__ import annotations

import json
import os
import sys

from ._common import CLIError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
DEFAULT_MODEL = "efficientnet_lite0"


def image_paths(inputs):
    """Yield the files to classify: explicit files as given, folders walked recursively in sorted order."""
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        yield os.path.join(root, name)
        else:
            yield item


def report_summary(summary, elapsed, as_json, setting):
    """The command's last line (the JSON summary, or one sentence ending with `setting`, how it ran); an error when
    no image could be read."""
    done = summary["images"]
    if as_json:
        print(json.dumps({"summary": summary}), flush=True)
    else:
        per_image = f", model {summary['model_ms_per_image']} ms/image" if done else ""
        print(f"{done} image(s) classified, {summary['skipped']} skipped, in {elapsed:.2f} s{per_image} ({setting})",
              flush=True)
    if done == 0:
        raise CLIError("no image could be read")
    return 0


def emit(record, as_json, bar):
    if as_json:
        text = json.dumps(record)
    else:
        batch = f", batch of {record['batch_images']} in {record['batch_ms']:.1f} ms" if "batch_ms" in record else ""
        lines = [f"{record['path']}  ({record['ms_per_image_in_batch']:.1f} ms/image{batch})"]
        lines += [f"  {entry['prob'] * 100:6.2f}%  {entry['label']}" for entry in record["top"]]
        text = "\n".join(lines)
    if bar is not None:
        bar.write(text, file=sys.stdout)
    else:
        print(text, flush=True)
