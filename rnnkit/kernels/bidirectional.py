"""One bidirectional kernel call for ``Bidirectional`` over two fusable layers.

``torch.lstm(..., bidirectional=True)`` runs both directions in one call; with
packed sequences its reverse direction reads each row's valid part from its
end, and its outputs come back aligned with the input steps, zero on the
padding. That is exactly Keras's ``Bidirectional`` after the backward output
is flipped back (Keras sets ``zero_output_for_mask = return_sequences`` on both
halves). The twin of this path is two separate layer calls.
"""

from __future__ import annotations

import torch

from rnnkit.cells.lstm import LSTMCell
from rnnkit.core.sequences import right_padded_lengths
from rnnkit.kernels.fused import native_chosen, run_kernel
from rnnkit.kernels.path import FUSED
from rnnkit.kernels.spec import capturing_graph, cell_to_torch, kernel_for


def pair_blockers(call_fw, call_bw) -> list[str]:
    """Why two prepared calls (``layer.prepare(...)``) cannot share one bidirectional kernel call.

    Empty: they can.
    """
    reasons = []
    for call in (call_fw, call_bw):
        plan = call.plan()
        if plan.path != FUSED:
            reasons.append(f"{call.layer.name} takes the {plan.path} path ({'; '.join(plan.reasons)})")
    if reasons:
        return reasons
    fw, bw = call_fw.layer, call_bw.layer
    mask, training = call_fw.mask, call_fw.training
    cf, cb = fw.cell, bw.cell
    if type(cf) is not type(cb) or cf.units != cb.units or cf.use_bias != cb.use_bias:
        reasons.append("the two halves have different cells")
    elif kernel_for(cf) is not kernel_for(cb):
        reasons.append("the two halves use different activations")
    if fw.go_backwards or not bw.go_backwards:
        reasons.append("the forward half must run forwards and the backward half backwards")
    if training and (cf.dropout > 0 or cb.dropout > 0):
        reasons.append("input dropout draws one mask per direction")
    if cf.dtype != cb.dtype or cf.kernel.device != cb.kernel.device:
        reasons.append("the two halves differ in dtype or device")
    if not capturing_graph() and native_chosen(cf, call_fw.inputs):
        reasons.append("the native kernel runs each half (measured faster than torch's bidirectional kernel)")
    if mask is not None and capturing_graph():
        reasons.append("under torch.compile/export a masked pair runs as two kernel calls (the mask is data)")
    elif mask is not None and (training or isinstance(cf, LSTMCell)):
        # measured (benchmarks): one packed bidirectional call is slower than two unpacked calls, except
        # GRU/SimpleRNN inference
        reasons.append("with a mask, two unpacked kernel calls beat one packed bidirectional call")
    if mask is not None and (fw.zero_output_for_mask != fw.return_sequences or
                             bw.zero_output_for_mask != bw.return_sequences):
        reasons.append("zero_output_for_mask was changed from Bidirectional's return_sequences")
    return reasons


def fused_bidirectional(call_fw, call_bw):
    """Both halves of two prepared calls at once (``pair_blockers`` found nothing); ``None`` when the
    mask is not right-padded (the caller then runs each half on its own).

    Returns ``(fw_last, fw_seq, fw_states), (bw_last, bw_seq, bw_states)`` with
    ``bw_seq`` in the backward layer's *processing* order, as its own call
    would return it.
    """
    fw, bw = call_fw.layer, call_bw.layer
    x, states_fw, states_bw, mask = call_fw.inputs, call_fw.states, call_bw.states, call_fw.mask
    kernel = kernel_for(fw.cell)
    weights = cell_to_torch(fw.cell) + cell_to_torch(bw.cell)
    B, T = x.shape[:2]
    u = fw.cell.units
    lengths, right_padded = right_padded_lengths(mask) if mask is not None else (None, True)
    if lengths is None or bool((lengths == T).all()):
        out, hn = run_kernel(kernel, x, [states_fw, states_bw], weights, fw.cell.use_bias)
        seq_fw, seq_bw = out[..., :u], out[..., u:].flip(1)
        return (seq_fw[:, -1], seq_fw, [h[0] for h in hn]), (seq_bw[:, -1], seq_bw, [h[1] for h in hn])

    if not right_padded:  # one kernel call needs right-padded rows: the caller runs each half
        return None
    out, hn = run_kernel(kernel, x, [states_fw, states_bw], weights, fw.cell.use_bias, lengths)
    has_steps = lengths > 0
    out = torch.where(has_steps.view(B, 1, 1), out, torch.zeros_like(out))
    new_fw = [torch.where(has_steps.unsqueeze(1), h[0], s) for h, s in zip(hn, states_fw)]
    new_bw = [torch.where(has_steps.unsqueeze(1), h[1], s) for h, s in zip(hn, states_bw)]
    seq_fw, seq_bw_aligned = out[..., :u], out[..., u:]
    idx = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, u)
    if fw.zero_output_for_mask:  # Keras: the last step's output, zero when it is padding
        last_fw = seq_fw[:, -1]
    else:  # the output of the last valid step
        last_fw = seq_fw.gather(1, idx).squeeze(1)
    return (last_fw, seq_fw, new_fw), (seq_bw_aligned[:, 0], seq_bw_aligned.flip(1), new_bw)
