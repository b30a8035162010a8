"""Running a built-in layer on PyTorch's fused RNN kernels.

``torch.lstm`` / ``torch.gru`` / ``torch.rnn_tanh`` / ``torch.rnn_relu`` are the
kernels behind ``torch.nn.LSTM/GRU/RNN`` (oneDNN or the native kernel on CPU,
cuDNN on GPU). ``fused_rnn`` gives exactly what :func:`rnnkit.core.loop.rnn` gives
for the same cell, including Keras's masking rules, for masks that are
right-padded (each row ``True...True False...False``):

* forward: the valid prefix runs on unmasked kernel calls (see
  :func:`rnnkit.kernels.ops.masked_kernel_call`); masked steps repeat the last valid
  output (zeros with ``zero_output_for_mask``); the final state is the state
  after the last valid step.
* ``go_backwards``: Keras flips the mask, so the padding comes *first* in
  processing order: the state stays initial and the output is zero there,
  then the valid part runs from its end. Here the valid part of each row is
  reversed (``reverse_sequence``), run, and shifted right by the
  padding length.
* fully masked rows keep their initial state and output zeros.

Eagerly on the CPU, rnnkit's native kernel (:mod:`rnnkit.kernels.native`) runs
the calls it measured faster on (:func:`rnnkit.kernels.native.preferred`: GRU
and SimpleRNN always, LSTM up to 64 units at small batch x units) and every mask with holes
(instead of the hoisted loop), when it can be built (:func:`native_chosen`).
"""

from __future__ import annotations

import torch

from rnnkit.core.sequences import right_padded_lengths
from rnnkit.kernels import native
from rnnkit.kernels.ops import kernel_call, mode_of, right_padded_call, rnn_kernel, rnn_kernel_masked
from rnnkit.kernels.spec import capturing_graph, cell_to_torch, kernel_for, spec_for


def run_kernel(kernel, x: torch.Tensor, directions: list[list[torch.Tensor]], weights: list, use_bias: bool,
               lengths: torch.Tensor | None = None):
    """One kernel call, bidirectional when ``directions`` holds two state lists.

    Returns ``out`` ``(B, T, n_directions*U)`` (zero past each row's length when
    ``lengths`` is given: packed sequences, fully masked rows run one step and
    must be fixed by the caller) and the final states, each
    ``(n_directions, B, U)`` in batch order. Under ``torch.compile`` /
    ``torch.export`` the call is the opaque op ``rnnkit::rnn_kernel``
    (:mod:`rnnkit.kernels.ops`); eagerly, the kernel itself.
    """
    hx = [per_state[0].unsqueeze(0) if len(per_state) == 1 else torch.stack(per_state)
          for per_state in zip(*directions)]
    args = (x, hx, list(weights), mode_of(kernel), use_bias, len(directions) == 2, lengths)
    out, *hn = rnn_kernel(*args) if capturing_graph() else kernel_call(*args)
    return out, hn


def fused_rnn(layer, x: torch.Tensor, states: list, mask: torch.Tensor | None, training: bool,
              zero_states: bool = False):
    """``(last_output, outputs, new_states)`` for batch-major ``x`` on a fused kernel; ``None`` when,
    eagerly, the mask has holes and the native kernel cannot run (the caller then runs its hoisted loop).
    ``zero_states``: ``states`` are known to be zeros (see ``right_padded_call``)."""
    cell = layer.cell
    graph = capturing_graph()
    kernel = kernel_for(cell)
    mode = mode_of(kernel)
    lengths = None
    holes = False
    use_native = not graph and native_chosen(cell, x, False, mode)  # (where preferred, it takes any mask as it is)
    if mask is not None and not graph and not use_native:  # (torch's kernels take right-padded masks only)
        lengths, right_padded = right_padded_lengths(mask)
        holes = not right_padded
        use_native = native_chosen(cell, x, holes, mode)
    if holes and not use_native:
        # eagerly, a mask the unmasked kernels cannot take (and no native kernel) goes back to the layer,
        # which runs its hoisted loop (the fastest exact loop); in a captured graph the masked op's own
        # step loop runs, the mask as data
        return None
    masks = cell.dropout_masks(x[:, 0], training) if training and cell.dropout else None  # (no slice without)
    if masks is not None:
        x = x * masks[0].unsqueeze(1)
    if use_native or mask is None:
        outputs, new_states = direct_call(cell, x, states, mask, kernel, use_native, layer.go_backwards,
                                          layer.zero_output_for_mask)
        return outputs.select(1, -1), outputs, new_states
    weights = cell_to_torch(cell)
    args = (x, mask, list(states), list(weights), mode, cell.use_bias, layer.go_backwards,
            layer.zero_output_for_mask)
    if graph or lengths is None:
        outputs, *new_states = rnn_kernel_masked(*args)
    else:
        outputs, *new_states = right_padded_call(x, mask, lengths, *args[2:], zero_states=zero_states,
                                                 cell_state=layer.stateful or layer.return_state)
    return outputs.select(1, -1), outputs, new_states


def direct_call(cell, x: torch.Tensor, states: list, mask: torch.Tensor | None, kernel, use_native: bool,
                go_backwards: bool, zero_output: bool) -> tuple[torch.Tensor, list]:
    """``(outputs, new_states)`` of one direction in one kernel call, outputs ``(B, T, U)`` in processing
    order: on the native kernel (``use_native``; any mask), else on torch's ``kernel`` without a mask. The
    weights are converted at the call (kept without gradients: :func:`cell_to_torch`). Also what a kept call
    plan with gradients on runs (:mod:`rnnkit.layers.call_plan`)."""
    if use_native:
        weights, native_mode = native_layout(cell)
        outputs, *new_states = native.native_call(x, mask, list(states), weights, native_mode, cell.use_bias,
                                                  go_backwards, zero_output)
        return outputs, new_states
    assert mask is None, "torch's kernels take no mask here (see fused_rnn)"
    out, hn = run_kernel(kernel, x.flip(1) if go_backwards else x, [states], cell_to_torch(cell), cell.use_bias)
    return out, [h[0] for h in hn]


def native_layout(cell) -> tuple[list, str]:
    """``(weights, mode)`` the native kernel runs ``cell`` on (:meth:`rnnkit.kernels.spec.KernelSpec.to_native`:
    a GRU's in Keras's gate order, no reordering)."""
    spec = spec_for(cell)
    assert spec is not None, "native_layout of a cell with no kernel"
    return spec.to_native(cell)


def native_chosen(cell, x: torch.Tensor, holes: bool = False, mode: str | None = None) -> bool:
    """Whether an eager call of a fusable ``cell`` (its kernel's ``mode``, looked up when not given) on ``x``
    runs on the native kernel: where it is preferred (or the mask has holes) and nothing blocks it (see
    :mod:`rnnkit.kernels.native`)."""
    mode = mode if mode is not None else mode_of(kernel_for(cell))
    return (holes or native.preferred(mode, x.shape[0], cell.units)) and native.blocker(x, [cell.kernel]) is None
