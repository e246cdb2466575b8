"""`Classifier`: the callable class `Dataset.map_batches` runs on each actor of the pool."""

from __future__ import annotations

import io
import time

import numpy as np

from .. import get_num_threads, set_num_threads
from ..plan import Plan
from ..transforms import load_image
from ..transforms._decode import error_text
from ._model import DEFAULT_MODEL, ModelBundle, bundle_model

#: The columns `Classifier` adds to each batch (an input column with one of these names is refused).
OUTPUT_COLUMNS = ("label", "index", "probability", "error", "latency_ms", "logits")


def _assigned_cpus():
    """The CPUs Ray gave this actor (rounded down, at least 1), or None outside a Ray worker."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # not a Ray worker, or an older Ray: fall back to convcore's default
        return None
    return max(1, int(cpus)) if cpus else None


def _resolve(model):
    """The ModelBundle behind `model`: an object-store reference (read once, zero-copy), a bundle, or something
    `bundle_model` builds (a zoo name or LoadedModel, built here: on an actor, once per actor)."""
    try:
        import ray
    except ImportError:
        ray = None
    if ray is not None and isinstance(model, ray.ObjectRef):
        model = ray.get(model)
    if isinstance(model, ModelBundle):
        return model
    return bundle_model(model)


class _Encoded(io.BytesIO):
    """Encoded image bytes that Pillow's messages name like the file they came from ('cannot identify image file
    'x.jpg''), as when the single-process command opens the path itself."""

    def __init__(self, data, name):
        super().__init__(data)
        self._name = name

    def __repr__(self):
        return repr(self._name)


def _as_rgb(img):
    """A decoded HWC / HW array as 3-channel HWC, as Pillow's convert('RGB') makes it: gray replicated, alpha
    dropped."""
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"image: expected an HWC or HW array (got shape {img.shape})")
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.shape[2] == 4:
        return img[:, :, :3]
    if img.shape[2] != 3:
        raise ValueError(f"image: expected 1, 3 or 4 channels (got shape {img.shape})")
    return img


def _probabilities(logits):
    """Softmax over classes in float64, unless the model already outputs probabilities (non-negative rows summing to
    1): the single-process `convcore classify` computes exactly this, so both give the same top-k."""
    logits = logits.reshape(logits.shape[0], -1).astype(np.float64)
    if np.all(logits >= 0) and np.allclose(logits.sum(axis=1), 1.0, atol=1e-3):
        return logits
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _to_arrow(values):
    """One input column (a numpy array) as an Arrow array: plain types natively, tensors as Ray's tensor type."""
    import pyarrow as pa

    values = np.asarray(values)
    if values.ndim == 1:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            pass
    from ray.data.extensions import ArrowTensorArray

    return ArrowTensorArray.from_numpy(values)


class Classifier:
    """Classify a batch of images: the callable class to give `ray.data.Dataset.map_batches` (an actor each).

    The model is built (or unpickled from the object store) once, when the actor starts, and runs with as many
    threads as CPUs Ray gave the actor. Each call maps a numpy batch ``{"image": ..., "path": ..., ...}`` (the image
    column holds uint8 HWC arrays, as `ray.data.read_images` gives, or encoded bytes, as `ray.data.read_binary_files`
    gives) to a `pyarrow.Table` with the other input columns (the image column is dropped unless `keep_image`) and:

    - ``label`` (list of str), ``index`` (list of int64), ``probability`` (list of float64): the top-k classes, most
      probable first (softmax of the logits, as the single-process command computes it);
    - ``error`` (str): why the row's image could not be decoded or preprocessed (its prediction columns are null),
      or null: a bad image is a row, never a failed job;
    - ``latency_ms`` (float64): the model's time per image in this batch;
    - ``logits`` (list of float32), only with ``logits=True``.

    Args:
        model: an object-store reference from `put_model` (one copy, shared by every actor), a `ModelBundle`, or a
            zoo model name (built on each actor from the weights installed there).
        column: the image column; None: "image" if the batch has one, else "bytes".
        topk: classes per row.
        logits: add the ``logits`` column.
        num_threads: threads per batch; None: the CPUs Ray assigned this actor (convcore's default outside Ray).
        keep_image: keep the image column in the output.

    Example:
        >>> ref = convcore.ray.put_model("efficientnet_lite0")
        >>> ds = ray.data.read_images("s3://bucket/photos", mode="RGB", include_paths=True)
        >>> ds.map_batches(convcore.ray.Classifier, fn_constructor_kwargs={"model": ref}, batch_size=16,
        ...                compute=ray.data.ActorPoolStrategy(size=4)).write_parquet("results/")
    """

    def __init__(self, model=DEFAULT_MODEL, *, column=None, topk=5, logits=False, num_threads=None,
                 keep_image=False):
        if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
            raise ValueError(f"topk: expected a positive integer (got {topk!r})")
        self.bundle = _resolve(model)
        self.column = column
        self.topk = topk
        self.logits = bool(logits)
        self.keep_image = bool(keep_image)
        self.num_threads = int(num_threads or _assigned_cpus() or get_num_threads())
        self.model = self.bundle.model
        if isinstance(self.model, Plan):
            self.model.num_threads = self.num_threads
        else:  # eager modules use convcore's process-wide setting (an actor is a process of its own)
            set_num_threads(self.num_threads)
        self._pool = None

    # ------------------------------------------------------------------------------------------------ decoding
    def _prepare(self, item, name):
        """One image cell -> CHW float32 (the model's preprocessing)."""
        if isinstance(item, (bytes, bytearray, memoryview)):
            img = load_image(_Encoded(bytes(item), name))
        elif isinstance(item, np.ndarray) and item.dtype.kind in "uif":
            img = _as_rgb(item)
        else:
            raise TypeError(f"image: expected encoded bytes or an HWC array (got {type(item).__name__})")
        return self.bundle.preprocess(img)

    def _prepare_all(self, images, names):
        """(arrays, errors): the preprocessed images (None where one failed) and the error text of each row."""

        def prepare(args):
            try:
                return self._prepare(*args), None
            except ImportError:  # no Pillow on this worker: a broken install, not a bad image
                raise
            except Exception as exc:
                return None, error_text(exc)  # the single-process command's text for it

        jobs = list(zip(images, names))
        if self.num_threads > 1 and len(jobs) > 1:  # Pillow's decoders and numpy release the GIL
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=self.num_threads)
            results = list(self._pool.map(prepare, jobs))
        else:
            results = [prepare(job) for job in jobs]
        return [r[0] for r in results], [r[1] for r in results]

    # ------------------------------------------------------------------------------------------------- running
    def _run(self, x):
        """Logits (count, classes) float32 for the NCHW batch x; a fixed-batch model runs in padded chunks."""
        fixed = self.bundle.fixed_batch
        if fixed is None:
            chunks = [x]
        else:
            chunks = []
            for start in range(0, len(x), fixed):
                part = x[start:start + fixed]
                if len(part) < fixed:  # pad with zeros, as the single-process command does
                    part = np.concatenate([part, np.zeros((fixed - len(part),) + part.shape[1:], part.dtype)])
                chunks.append(part)
        outs = []
        for chunk in chunks:
            out = self.model(np.ascontiguousarray(chunk, dtype=np.float32))
            if isinstance(out, (tuple, list)):
                out = out[0]
            out = np.asarray(out, dtype=np.float32)
            outs.append(out.reshape(out.shape[0], -1))
        return np.concatenate(outs)[:len(x)]

    def __call__(self, batch):
        import pyarrow as pa

        column = self.column or ("image" if "image" in batch else "bytes" if "bytes" in batch else None)
        if column is None or column not in batch:
            raise KeyError(f"column: expected an image column ({column or 'image or bytes'}) in the batch (got "
                           f"{sorted(batch)})")
        kept = {name: values for name, values in batch.items() if name != column or self.keep_image}
        clash = sorted(set(kept) & set(OUTPUT_COLUMNS))
        if clash:
            raise ValueError(f"batch: input column(s) {clash} would be replaced by the classifier's output; rename "
                             f"them first (Dataset.rename_columns)")
        images = batch[column]
        count = len(images)
        names = [str(n) for n in batch["path"]] if "path" in batch else ["<encoded image>"] * count
        arrays, errors = self._prepare_all(images, names)
        good = [i for i, e in enumerate(errors) if e is None]

        labels = self.bundle.labels
        index = [None] * count
        label = [None] * count
        probability = [None] * count
        latency = [None] * count
        logits_rows = [None] * count
        if good:
            start = time.perf_counter()
            logits = self._run(np.stack([arrays[i] for i in good]))
            per_image_ms = (time.perf_counter() - start) * 1000 / len(good)
            probs = _probabilities(logits)
            top = np.argsort(-probs, axis=1, kind="stable")[:, :self.topk]
            for row, i in enumerate(good):
                ks = top[row].tolist()
                index[i] = ks
                label[i] = [labels[k] if k < len(labels) else f"class {k}" for k in ks]
                probability[i] = probs[row, top[row]].tolist()
                latency[i] = per_image_ms
                logits_rows[i] = logits[row]
        columns = {name: _to_arrow(values) for name, values in kept.items()}
        columns["label"] = pa.array(label, pa.list_(pa.string()))
        columns["index"] = pa.array(index, pa.list_(pa.int64()))
        columns["probability"] = pa.array(probability, pa.list_(pa.float64()))
        columns["error"] = pa.array(errors, pa.string())
        columns["latency_ms"] = pa.array(latency, pa.float64())
        if self.logits:
            columns["logits"] = pa.array(logits_rows, pa.list_(pa.float32()))
        return pa.table(columns)

    def __repr__(self):
        return (f"Classifier({self.bundle.name}, {self.bundle.engine}, {self.num_threads} thread(s), "
                f"top-{self.topk})")
