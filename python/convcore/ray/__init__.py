"""Batch inference on Ray Data: classify millions of images on a cluster with convcore's compiled plans.

Needs Ray Data on the driver and on every node (the ``ray`` extra: ``pip install 'convcore[ray]'``); ``import
convcore`` never imports this package, nor Ray.

- `classify(source, model=..., batch_size=..., concurrency=...)`: folders, files, S3 prefixes or a Dataset -> a
  Dataset of predictions (``path``, ``label`` / ``index`` / ``probability`` top-k, ``error``, ...), ready for
  ``write_parquet``.
- `Classifier`: the callable class behind it, for your own ``Dataset.map_batches`` pipelines.
- `put_model`: the model built once on the driver and put in the object store once; every actor unpickles it
  (a Plan is recompiled for the actor's CPU) instead of reading a checkpoint path.

Example:
    >>> import convcore.ray
    >>> ds = convcore.ray.classify("/shared/photos", batch_size=16, concurrency=4)
    >>> ds.write_parquet("/shared/predictions")

`convcore classify DIR --ray` runs the same from the command line.
"""

from __future__ import annotations

try:
    import ray as _ray  # noqa: F401
    import ray.data as _ray_data  # noqa: F401
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"convcore.ray needs Ray Data: pip install 'convcore[ray]' ({_exc})") from None

from ._classifier import OUTPUT_COLUMNS, Classifier
from ._dataset import IMAGE_EXTENSIONS, classify, put_model
from ._model import DEFAULT_MODEL, ModelBundle, bundle_model

__all__ = ["classify", "Classifier", "put_model", "bundle_model", "ModelBundle", "IMAGE_EXTENSIONS",
           "OUTPUT_COLUMNS", "DEFAULT_MODEL"]
