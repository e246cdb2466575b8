"""Helpers shared by the model-zoo tests (a plain module: tests/ has several conftest.py files)."""

import numpy as np


def randomize_batch_norm(torch_model, seed=0):
    """Give every BatchNorm2d non-trivial statistics and affine parameters (fresh ones are identity maps)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in torch_model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return torch_model


def to_numpy_state(torch_model):
    """A torch module's state_dict as {name: numpy array}."""
    return {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}


def assert_logits_close(ours, reference, rel=1e-4):
    """The whole-model bound of docs/architecture.md (section 5): max|err| <= rel * max|reference|."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    scale = float(np.abs(reference).max())
    err = float(np.abs(ours.astype(np.float64) - reference).max())
    assert scale > 0
    assert err <= rel * scale, f"max|err| = {err:.3e} > {rel} * max|ref| = {rel * scale:.3e}"
    return err / scale


def random_input(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
