"""``rnnkit.kernels.derived``: derived inference weights kept while their source is unchanged."""

import torch

import rnnkit
from rnnkit.kernels import derived


def test_kept_until_the_source_changes_in_place_or_is_another_tensor():
    calls = []

    def make(w):
        calls.append(1)
        return w.t().contiguous()

    w = torch.randn(3, 4)
    first = derived.kept("test", w, make)
    assert derived.kept("test", w, make) is first and len(calls) == 1
    with torch.no_grad():
        w.add_(1.0)  # a new version
    second = derived.kept("test", w, make)
    assert len(calls) == 2 and torch.equal(second, w.t())
    other = w.clone()
    assert torch.equal(derived.kept("test", other, make), other.t()) and len(calls) == 3
    assert derived.kept("other kind", w, make) is not second  # kinds are kept apart


def test_inference_mode_tensors_are_never_kept():
    with torch.inference_mode():
        w = torch.randn(2, 2)
    before = len(derived._KEPT)
    assert torch.equal(derived.kept("test", w, lambda t: t * 2), w * 2)
    assert len(derived._KEPT) == before


def test_at_most_limit_entries():
    sources = [torch.randn(1) for _ in range(derived.LIMIT + 5)]
    for s in sources:
        derived.kept("limit", s, lambda t: t + 1)
    assert len(derived._KEPT) <= derived.LIMIT


def test_masked_lstm_inference_follows_weight_updates():
    """The held-LSTM weights of a right-padded call are kept between inference calls: an in-place update
    of the parameters (an optimizer step) must show in the next call."""
    torch.manual_seed(2)
    layer = rnnkit.LSTM(64, return_sequences=True)  # batch 16 x 64 units: torch's kernel, held for the mask
    loop = rnnkit.LSTM(64, return_sequences=True, use_fused=False)
    x = torch.randn(16, 7, 5)
    mask = torch.arange(7) < torch.randint(1, 8, (16, 1))
    layer(x)
    loop.build(x.shape)
    for _ in range(2):
        loop.load_state_dict(layer.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(layer(x, mask=mask), loop(x, mask=mask), rtol=1e-5, atol=1e-6)
            layer.cell.kernel.mul_(1.5)
