"""Shared test helpers: Keras 3 (torch backend) as the oracle."""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# The tests use tiny tensors: one thread avoids pool overhead on 2-core CI machines.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def keras():
    """Keras 3 on the torch backend, or skip when it is not installed."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras must run on the torch backend (KERAS_BACKEND=torch)")
    return keras


def to_numpy(x):
    """A Keras or torch tensor (or array) as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def keras_output_and_grad(keras_layer, x, **call_kwargs):
    """Keras layer outputs (list) and d(sum of first output)/dx, via torch autograd."""
    xt = torch.tensor(x, requires_grad=True)
    out = keras_layer(xt, **call_kwargs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    first = outs[0].value if hasattr(outs[0], "value") else outs[0]
    (grad,) = torch.autograd.grad(first.sum(), xt)
    return [to_numpy(o) for o in outs], grad.numpy()


def rnnkit_output_and_grad(layer, x, **call_kwargs):
    """rnnkit layer outputs (list) and d(sum of first output)/dx."""
    xt = torch.tensor(x, requires_grad=True)
    out = layer(xt, **call_kwargs)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    (grad,) = torch.autograd.grad(outs[0].sum(), xt)
    return [to_numpy(o) for o in outs], grad.numpy()


MASK_RIGHT_PADDED = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=bool)
MASK_HOLES = np.array([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 0], [1, 1, 0, 1, 1, 1]], dtype=bool)

