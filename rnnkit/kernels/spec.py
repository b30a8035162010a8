"""``KernelSpec``: what one cell family can do, declared in one place.

Each family file in this package (``lstm.py``, ``gru.py``, ``simple_rnn.py``,
``conv_lstm.py``) defines one spec and registers it with :func:`register`.
The path choice (:mod:`rnnkit.kernels.path`), the fused runner
(:mod:`rnnkit.kernels.fused`) and ``Bidirectional``'s pairing only read specs:
adding a family or a kernel means adding one file here.

A spec answers four questions about a cell of its family:

``matches(cell)``        is it this family, with its step math not overridden
                         by a subclass (else the generic loop runs it)? It
                         may read only ``type(cell)``: answers are cached per type.
``blockers(cell)``       why its configuration cannot run on the fused kernel
                         (activations, variants without a kernel); empty: it can.
``kernel(cell)``         the ``torch`` kernel function (``torch.lstm`` ...), or
                         ``None`` for a family with no fused kernel.
``to_torch(cell)``       its weights in the kernel's layout (differentiable);
                         ``from_torch(...)`` goes back (Keras layout).
``to_native(cell)``      its weights and mode for rnnkit's native kernel
                         (:mod:`rnnkit.kernels.native`): ``to_torch``'s and the
                         kernel's mode unless the family has a cheaper layout.

Every matching cell can be *hoisted*: its input projection for all timesteps
runs before the loop (``cell.project_inputs``) and the loop runs only
``cell.recurrent_step``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

_STEP_METHODS = ("recurrent_step", "project_inputs", "call", "forward")


def capturing_graph() -> bool:
    """Whether a graph is being captured (``torch.compile``, ``torch.export``, ``torch.jit.trace``):
    then the kernels run as the opaque ops, converted weights are made anew (no cache), and paths never
    depend on mask values."""
    return torch.compiler.is_compiling() or torch._C._is_tracing()  # (torch.jit.is_tracing, outside TorchScript)


class KernelSpec:
    """Base spec: a family (``cell_class``) that can be hoisted but has no kernel."""

    name: str = ""
    cell_class: type = object

    def matches(self, cell: Any) -> bool:
        """``cell`` is of this family and no subclass overrides its step math."""
        if not isinstance(cell, self.cell_class):
            return False
        kind = type(cell)
        return all(getattr(kind, m) is getattr(self.cell_class, m) for m in _STEP_METHODS)

    def blockers(self, cell: Any) -> list[str]:
        return [f"{self.name} has no fused kernel"]

    def kernel(self, cell: Any) -> Callable | None:
        return None

    def to_torch(self, cell: Any) -> list[torch.Tensor]:
        raise NotImplementedError(f"{self.name} has no kernel weight layout")

    def to_native(self, cell: Any) -> tuple[list[torch.Tensor], str]:
        """``(weights, mode)`` for the native kernel: torch's layout (``[w_ih, w_hh(, b_ih, b_hh)]``) in the gate
        order ``mode`` names (differentiable; ``cell_to_torch``'s kept weights without gradients)."""
        kernel = self.kernel(cell)
        assert kernel is not None, f"{self.name} has no kernel"
        from rnnkit.kernels.ops import mode_of

        return cell_to_torch(cell), mode_of(kernel)


_SPECS: list[KernelSpec] = []


_SPEC_BY_TYPE: dict[type, KernelSpec | None] = {}  # spec_for's answers; matches() reads only the type


def register(spec: KernelSpec) -> KernelSpec:
    """Add ``spec`` to the specs :func:`spec_for` consults (newest first)."""
    _SPECS.insert(0, spec)
    _SPEC_BY_TYPE.clear()
    return spec


def spec_for(cell: Any) -> KernelSpec | None:
    """The spec whose family ``cell`` belongs to, unmodified; ``None`` for any other cell.

    Kept per ``type(cell)`` (``matches`` depends on the class only; every
    layer call asks), until the next :func:`register`.
    """
    kind = type(cell)
    try:
        return _SPEC_BY_TYPE[kind]
    except KeyError:
        pass
    found = next((spec for spec in _SPECS if spec.matches(cell)), None)
    _SPEC_BY_TYPE[kind] = found
    return found


def zero_initial(cell: Any) -> bool:
    """``cell`` is a built-in cell whose initial states are its family's zeros (``get_initial_state`` not
    overridden by a subclass): calls may make the zeros themselves."""
    spec = spec_for(cell)
    return spec is not None and (getattr(type(cell), "get_initial_state", None)
                                 is getattr(spec.cell_class, "get_initial_state", None))


def family_of(cell: Any) -> KernelSpec | None:
    """The spec of ``cell``'s family, even when a subclass overrides its step."""
    for spec in _SPECS:
        if isinstance(cell, spec.cell_class):
            return spec
    return None


def cell_to_torch(cell: Any) -> list[torch.Tensor]:
    """torch-layout weights of a built-in cell (differentiable).

    Without gradients (inference) the converted weights are kept on the cell
    and reused while its parameters are the same tensors, unchanged (identity,
    storage, version counter, dtype and device): no per-call conversion. With gradients they are made
    anew each call, so that every graph has its own. An edit through ``p.data`` (``p.data.copy_(...)``)
    bypasses torch's version counter and is not seen by kept weights: edit parameters in place under
    ``torch.no_grad()`` (``p.copy_(...)``, as optimizers and ``load_state_dict`` do), or assign new ones.
    """
    spec = spec_for(cell)
    if spec is None:
        raise TypeError(f"{type(cell).__name__} is not a built-in cell with a kernel weight layout")
    if torch.is_grad_enabled() or capturing_graph():
        return spec.to_torch(cell)
    # (a new dtype or device means new storage: the data pointer covers them)
    key = tuple((id(p), p.data_ptr(), p._version) for p in _weights_of(cell) if p is not None)
    cached = _TORCH_WEIGHTS.get(cell)
    if cached is not None and cached[0] == key:
        return cached[1]
    weights = [w.contiguous() for w in spec.to_torch(cell)]  # the kernels read contiguous weights faster
    _TORCH_WEIGHTS[cell] = (key, weights)
    return weights


def _weights_of(cell: Any) -> tuple:
    """``(kernel, recurrent_kernel, bias)`` of a built-in cell (bias None without one): from the registered
    parameters when they are plain ones (the common case, no attribute lookup), else by name
    (parametrized weights, ``torch.nn.utils.parametrize``)."""
    params = cell._parameters
    found = (params.get("kernel"), params.get("recurrent_kernel"), params.get("bias"))
    if found[0] is None or found[1] is None or (found[2] is None and cell.use_bias):
        return cell.kernel, cell.recurrent_kernel, getattr(cell, "bias", None)
    return found


# Converted inference weights per cell, outside the cell: never pickled, copied or in a state_dict.
_TORCH_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def kernel_for(cell: Any) -> Callable | None:
    """The ``torch`` kernel function for a built-in cell (``None``: no kernel)."""
    spec = spec_for(cell)
    return None if spec is None else spec.kernel(cell)
