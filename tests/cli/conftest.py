import numpy as np
import pytest

from convcore import models


@pytest.fixture(scope="session")
def mobilenet_weights(tmp_path_factory):
    """A random-weight mobilenet_v2 checkpoint (.npz): the CLI path without the pretrained-weights package."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2-random.npz"
    np.savez(path, **models.get_model("mobilenet_v2").state_dict())
    return str(path)
