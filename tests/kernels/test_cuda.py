"""GPU checks: the fused path on CUDA (cuDNN) equals the CPU generic loop. Skipped without a GPU."""

import pytest
import torch

import rnnkit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.SimpleRNN])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cuda_fused_equals_cpu_generic(cls, masked, go_backwards):
    torch.manual_seed(0)
    x = torch.randn(4, 7, 5)
    mask = torch.arange(7) < torch.tensor([[7], [5], [1], [0]]) if masked else None
    cpu = cls(6, return_sequences=True, return_state=True, go_backwards=go_backwards, use_fused=False)
    cpu.build(x.shape)
    gpu = cls(6, return_sequences=True, return_state=True, go_backwards=go_backwards)
    gpu.build(x.shape)
    gpu.set_weights(cpu.get_weights())
    gpu.cuda()
    x_gpu = x.cuda()
    assert rnnkit.explain(gpu, x_gpu, None if mask is None else mask.cuda()).path == "fused"
    out_cpu = cpu(x, mask=mask)
    out_gpu = gpu(x_gpu, mask=None if mask is None else mask.cuda())
    for a, b in zip(out_cpu, out_gpu):
        torch.testing.assert_close(b.cpu(), a, atol=1e-5, rtol=1e-4)


def test_cuda_bidirectional_one_kernel_call():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4)
    ref = rnnkit.Bidirectional(rnnkit.LSTM(5, return_sequences=True, use_fused=False))
    ref.build(x.shape)
    fused = rnnkit.Bidirectional(rnnkit.LSTM(5, return_sequences=True))
    fused(x.cuda())  # lazily built on the input's device
    fused.set_weights(ref.get_weights())
    torch.testing.assert_close(fused(x.cuda()).cpu(), ref(x), atol=1e-5, rtol=1e-4)
