"""`classify`: images (folders, files, S3 prefixes or a Dataset) -> a Dataset of predictions, on an actor pool."""

from __future__ import annotations

import math
import os

from ._classifier import Classifier
from ._model import DEFAULT_MODEL, bundle_model

#: The file extensions `classify` reads in folders (those `convcore classify` reads), lower case.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def put_model(model=DEFAULT_MODEL, weights="installed", *, preset=None, batch_size=16, eager=False):
    """Build the model here (the driver) and put it in Ray's object store once: the reference to give every
    `Classifier` actor (they read it from their node's shared memory, zero-copy; nothing is read from a path).

    Arguments as `bundle_model`. Returns a `ray.ObjectRef` to a `ModelBundle`.
    """
    import ray

    return ray.put(bundle_model(model, weights, preset=preset, batch_size=batch_size, eager=eager))


def _compute(concurrency):
    """concurrency -> Ray Data's actor pool: n (fixed), (min, max) (autoscaling) or None (1 to as many as fit)."""
    from ray.data import ActorPoolStrategy

    if concurrency is None:
        return ActorPoolStrategy(min_size=1, max_size=None)
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        return ActorPoolStrategy(size=concurrency)
    if (isinstance(concurrency, tuple) and len(concurrency) == 2 and all(isinstance(c, int) for c in concurrency)
            and 1 <= concurrency[0] <= concurrency[1]):
        return ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    raise ValueError(f"concurrency: expected a positive int, a (min, max) pair or None (got {concurrency!r})")


def classify(source, model=DEFAULT_MODEL, weights="installed", *, preset=None, batch_size=16, concurrency=None,
             num_cpus=1, topk=5, logits=False, eager=False, column=None, file_extensions=IMAGE_EXTENSIONS,
             read_num_cpus=0, read_concurrency="auto", preserve_order=False, **ray_remote_args):
    """Classify images on a Ray cluster: returns the (lazy) Dataset of predictions, ready for `write_parquet`.

    The model is built once here and put in the object store once (`put_model`); an actor pool of `Classifier`s
    (each with `num_cpus` CPUs and as many threads) decodes, preprocesses and classifies `batch_size` images at a
    time. Rows: the input columns but the image (``path`` for files), then ``label`` / ``index`` / ``probability``
    (the top-k), ``error`` (why an image could not be decoded; null otherwise), ``latency_ms`` and, with
    `logits`, ``logits`` (see `Classifier`).

    Args:
        source: a folder, file or URI (``s3://bucket/prefix``, ``gs://...``: anything `ray.data.read_binary_files`
            reads), a list of them, or a `ray.data.Dataset` with an image column (``image``: decoded HWC arrays,
            e.g. from `ray.data.read_images`; or ``bytes``: encoded files). Files are read by the workers: on a
            multi-node cluster use a shared folder mounted at the same path on every node, or object storage.
        model, weights, preset, eager: the model (see `bundle_model`); `model` may also be a `put_model`
            reference, to share one object-store copy between several datasets.
        batch_size: images per model call.
        concurrency: actors: an int (a fixed pool), a (min, max) pair (autoscaling), or None (1 up to as many as
            the cluster's CPUs allow).
        num_cpus: CPUs reserved per actor; its model runs that many threads.
        topk: classes per row.
        logits: add the ``logits`` column.
        column: the image column of a Dataset source (None: ``image``, else ``bytes``).
        file_extensions: which files of folders to read (None: every file, e.g. when `source` lists files).
        read_num_cpus: CPUs reserved per file-reading task. Reading encoded bytes is I/O (the actors decode), and
            with the default 0 a pool whose actors hold every CPU (2 actors x 1 CPU on a 2-CPU machine) still gets
            its input: with 1, Ray Data would wait forever for a CPU to read with.
        read_concurrency: file-reading tasks at a time: "auto" (two per CPU of the pool at its largest, so that
            reading keeps up even from object storage, without starting a worker process per file group on a small
            machine; Ray's default when the pool is unbounded), an int, or None (Ray's default).
        preserve_order: produce rows in input order (the order of `source`'s files), at some cost in throughput.
        **ray_remote_args: more arguments for the actors (``resources=``, ``memory=``, ``runtime_env=``, ...).

    Returns:
        A `ray.data.Dataset`.

    Example:
        >>> ds = convcore.ray.classify("s3://bucket/photos/", batch_size=32, concurrency=8)
        >>> ds.write_parquet("s3://bucket/predictions/")
    """
    import ray
    import ray.data

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer (got {batch_size!r})")
    compute = _compute(concurrency)
    if isinstance(source, ray.data.Dataset):
        dataset = source
    else:
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        if not paths:
            raise ValueError("source: expected at least one file, folder or URI (got none)")
        extensions = None if file_extensions is None else [e.lstrip(".") for e in file_extensions]
        if read_concurrency == "auto":
            largest = concurrency[1] if isinstance(concurrency, tuple) else concurrency
            read_concurrency = 2 * largest * max(1, math.ceil(num_cpus)) if largest else None
            if read_concurrency and all(os.path.isfile(p) for p in paths):  # no more readers than files
                read_concurrency = min(read_concurrency, len(paths))
        # Encoded bytes, decoded by the actors: read_images would fail the whole job on one undecodable file.
        dataset = ray.data.read_binary_files([os.fspath(p) for p in paths], include_paths=True,
                                             file_extensions=extensions, num_cpus=read_num_cpus,
                                             concurrency=read_concurrency)
        column = "bytes"
    ref = model if isinstance(model, ray.ObjectRef) else put_model(model, weights, preset=preset,
                                                                   batch_size=batch_size, eager=eager)
    result = dataset.map_batches(Classifier, fn_constructor_kwargs=dict(model=ref, column=column, topk=topk,
                                                                        logits=logits),
                                 batch_size=batch_size, batch_format="numpy", compute=compute, num_cpus=num_cpus,
                                 **ray_remote_args)
    if preserve_order:
        result.context.execution_options.preserve_order = True
    return result
