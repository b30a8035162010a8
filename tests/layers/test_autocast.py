"""Mixed precision: under ``torch.autocast`` every path returns the dtype the ``torch.nn`` twin returns."""

import pytest
import torch

import rnnkit

X = torch.randn(2, 5, 3)
RIGHT_PADDED = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
HOLES = torch.tensor([[1, 0, 1, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
TWINS = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}


def twin_dtype(name):
    module = TWINS[name](3, 4, batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return module(X)[0].dtype


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("kwargs", [{}, {"use_fused": False}, {"recurrent_activation": "hard_sigmoid"}],
                         ids=["fused", "generic", "hoisted"])
@pytest.mark.parametrize("mask", [None, RIGHT_PADDED, HOLES], ids=["no-mask", "right-padded", "holes"])
def test_every_path_returns_the_torch_nn_dtype(name, kwargs, mask):
    if name == "SimpleRNN" and "recurrent_activation" in kwargs:
        kwargs = {"activation": "sigmoid"}
    layer = getattr(rnnkit, name)(4, return_sequences=True, return_state=True, **kwargs)
    layer(X)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(X, mask=mask)
    expected = twin_dtype(name)
    assert [t.dtype for t in out] == [expected] * len(out)
    reference = layer(X, mask=mask)  # the float32 call: autocast changes precision, not the numbers' meaning
    torch.testing.assert_close(out[0].float(), reference[0], rtol=0.05, atol=0.05)


def test_trains_under_autocast_with_float32_gradients():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(4)
    layer(X)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = layer(X, mask=RIGHT_PADDED).float().square().sum()
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and p.grad.abs().sum() > 0
               for p in layer.parameters())


def test_a_bfloat16_layer_trains():
    torch.manual_seed(1)
    layer = rnnkit.GRU(8, dtype="bfloat16")
    x, target = torch.randn(4, 6, 3), torch.randn(4, 8)
    layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=0.2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = (layer(x).float() - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert layer(x).dtype == torch.bfloat16
    assert losses[-1] < losses[0]
