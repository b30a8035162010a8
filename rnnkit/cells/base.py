"""Shared machinery of the built-in cells: weights, dropout masks, projections.

Two bases: :class:`GatedCell` holds what every built-in cell shares (the
weight arguments and their creation, dropout masks, ``call``, config) and is
the base of ``ConvLSTMCell``; :class:`BuiltinCell` adds the dense part
(``units``, ``implementation``, matrix-product projections) and is the base of
``SimpleRNNCell``, ``GRUCell`` and ``LSTMCell``.

Every dense cell computes, per step, with ``G`` gates of ``units`` each::

    x_proj = (x * dropout_mask) @ kernel + input_bias        # (batch, G*units)
    output, new_states = recurrent_step(x_proj, states)      # cell-specific

``kernel`` is ``(input_dim, G*units)`` and ``recurrent_kernel``
``(units, G*units)``, gates concatenated in Keras order. Because ``x_proj``
does not depend on the state, the projection of all timesteps can be done in
one matrix product before the loop (``project_inputs`` accepts
``(batch, time, input_dim)`` too); the loop then runs only ``recurrent_step``.
``call`` is exactly ``recurrent_step(project_inputs(x))``: one code path.

Dropout follows Keras: one mask per sequence (variational dropout), drawn on
the first step of a call and kept until the layer calls
``reset_dropout_masks()``. With ``recurrent_dropout`` (or
``implementation=1``) each gate gets its own mask, as Keras's implementation 1.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit.core.protocol import zero_states
from rnnkit.core.sequences import as_tensor
from rnnkit.engine import activations, constraints, initializers, regularizers
from rnnkit.engine.layer import Layer
from rnnkit.engine.seeds import SeedStream, keep_masks


def check_rate(layer_name: str, arg: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{layer_name}: {arg} must be in [0, 1), got {value}")
    return value


def check_units(layer_name: str, units: Any) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"{layer_name}: units must be a positive integer, got {units!r}")
    return units


class GatedCell(Layer):
    """Shared base of the built-in cells: ``n_gates`` gate blocks, three weights, dropout masks.

    What ``BuiltinCell`` (the dense cells) and ``ConvLSTMCell`` share: the
    activation, bias, initializer, regularizer and constraint arguments, the
    creation of ``kernel``, ``recurrent_kernel`` and ``bias`` (shapes from the
    subclass), the per-sequence dropout masks, ``call`` (exactly
    ``recurrent_step(project_inputs(x))``, numpy inputs and states accepted)
    and their config. Subclasses define ``state_size``, ``build``,
    ``_bias_shape``, ``project_inputs`` and ``recurrent_step``.
    """

    n_gates = 1

    # ``None`` without ``use_bias``; a parametrization (weight_norm ...) reads it back as a plain tensor
    bias: torch.Tensor | None
    _generator: SeedStream | None
    # written through ``__dict__`` by ``reset_dropout_masks``
    _dropout_masks: list[torch.Tensor] | None
    _recurrent_dropout_masks: list[torch.Tensor] | None

    def __init__(
        self,
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        trainable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = check_rate(self.name, "dropout", dropout)
        self.recurrent_dropout = check_rate(self.name, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._generator = None
        self.reset_dropout_masks()

    # ---------------------------------------------------------------- weights
    def _add_weights(self, kernel_shape: tuple, recurrent_kernel_shape: tuple) -> None:
        """Create ``kernel``, ``recurrent_kernel`` and ``bias`` (``None`` without ``use_bias``), in that order."""
        self.kernel = self.add_weight(
            kernel_shape, self.kernel_initializer, "kernel", self.kernel_regularizer, self.kernel_constraint
        )
        self.recurrent_kernel = self.add_weight(
            recurrent_kernel_shape, self.recurrent_initializer, "recurrent_kernel",
            self.recurrent_regularizer, self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                self._bias_shape(), self._bias_initializer(), "bias", self.bias_regularizer, self.bias_constraint
            )
        else:
            self.bias = None

    def _bias_shape(self) -> tuple:
        raise NotImplementedError

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    # ---------------------------------------------------------- dropout masks
    def reset_dropout_masks(self) -> None:
        # plain dict writes: this runs twice per layer call, masks are no modules
        self.__dict__["_dropout_masks"] = None
        self.__dict__["_recurrent_dropout_masks"] = None

    @property
    def mask_count(self) -> int:
        """How many input dropout masks a sequence draws: one per gate here; ``BuiltinCell`` shares one
        when it can."""
        return self.n_gates

    def _draw(self, like: torch.Tensor, rate: float) -> list[torch.Tensor]:
        if self.seed is not None and self._generator is None:
            self._generator = SeedStream(self.seed)  # replayed by torch.utils.checkpoint's recomputation
        keep = 1.0 - rate
        kept = keep_masks(like.shape, keep, self.mask_count, self._generator, like.device, like.dtype)
        return [m.to(like.dtype) / keep for m in kept]

    def dropout_masks(self, x_step: torch.Tensor, training: bool) -> list[torch.Tensor] | None:
        """Input masks (shape of one step of ``x``), one (or one per gate) per sequence."""
        if not training or self.dropout == 0.0:
            return None
        if self._dropout_masks is None:
            self._dropout_masks = self._draw(x_step, self.dropout)
        return self._dropout_masks

    def recurrent_dropout_masks(self, h: torch.Tensor, training: bool) -> list[torch.Tensor] | None:
        if not training or self.recurrent_dropout == 0.0:
            return None
        if self._recurrent_dropout_masks is None:
            self._recurrent_dropout_masks = self._draw(h, self.recurrent_dropout)
        return self._recurrent_dropout_masks

    # ------------------------------------------------------------------- step
    def project_inputs(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def recurrent_step(self, x_proj: torch.Tensor, states: Any, training: bool = False):
        raise NotImplementedError

    def _as_tensor(self, x: Any, dtype: torch.dtype, what: str) -> torch.Tensor:
        """``x`` in ``dtype`` (numpy arrays too, as the layers take them); bool/complex are refused."""
        if isinstance(x, torch.Tensor) and x.dtype == dtype:
            return x  # the loop's case, every step: nothing to convert
        return as_tensor(x, dtype, self.kernel.device, what, self.name)

    def call(self, inputs: Any, states: Any, training: bool | None = None):
        """One step: ``(output, new_states)`` from ``inputs`` ``(batch, ...)`` and the ``states`` list."""
        training = self.training if training is None else bool(training)
        if not isinstance(states, (list, tuple)):
            states = [states]
        dtype = self.dtype
        inputs = self._as_tensor(inputs, dtype, "inputs")
        states = [self._as_tensor(s, dtype, "states") for s in states]
        return self.recurrent_step(self.project_inputs(inputs, training), states, training)

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=_maybe(regularizers.serialize, self.kernel_regularizer),
            recurrent_regularizer=_maybe(regularizers.serialize, self.recurrent_regularizer),
            bias_regularizer=_maybe(regularizers.serialize, self.bias_regularizer),
            kernel_constraint=_maybe(constraints.serialize, self.kernel_constraint),
            recurrent_constraint=_maybe(constraints.serialize, self.recurrent_constraint),
            bias_constraint=_maybe(constraints.serialize, self.bias_constraint),
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            seed=self.seed,
        )
        return config


class BuiltinCell(GatedCell):
    """Base of the dense cells ``SimpleRNNCell``, ``GRUCell`` and ``LSTMCell`` (``n_gates`` blocks of ``units``).

    Adds to :class:`GatedCell` what makes a cell dense: ``units``, the
    ``implementation`` switch of the dropout masks, matrix-product
    projections (``project_inputs``, ``recurrent_matmul``) and the
    ``(units,)``-sized states; see the module docstring.

    ``torch_layout`` (a class fact): the 2-D ``kernel`` and ``recurrent_kernel``
    keep Keras's shapes ``(D, G*U)`` / ``(U, G*U)`` but are stored as the
    transposes of contiguous ``(G*U, D)`` / ``(G*U, U)`` tensors, torch's
    layout: a cell that runs on torch's kernel (LSTM on oneDNN or cuDNN) then
    hands its weights over, and gets their gradients back, without a
    transposed copy either way (2-4% of an LSTM training step).
    """

    torch_layout = False

    def __init__(self, units: int, implementation: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = check_units(self.name, units)
        if isinstance(implementation, bool) or implementation not in (0, 1, 2):
            raise ValueError(f"{self.name}: implementation must be 1 or 2 (0 runs as 2), got {implementation!r}")
        self.implementation = int(implementation)

    # ------------------------------------------------------------ protocol
    @property
    def state_size(self) -> Any:
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def get_initial_state(self, batch_size: int | None = None) -> list[torch.Tensor]:
        device = self.kernel.device if self.built else None
        return zero_states(self.state_size, batch_size, self.dtype, device)

    def build(self, input_shape: tuple) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"{self.name}: the last input dimension must be known to build, got {input_shape}")
        self.input_dim = int(input_dim)
        g = self.n_gates * self.units
        self._add_weights((self.input_dim, g), (self.units, g))
        if self.torch_layout:
            for w in (self.kernel, self.recurrent_kernel):
                w.data = w.data.t().contiguous().t()
        self.built = True

    def _bias_shape(self) -> tuple:
        return (self.n_gates * self.units,)

    @property
    def input_bias(self) -> torch.Tensor | None:
        """The bias added to the input projection (all of it by default)."""
        return self.bias

    @property
    def mask_count(self) -> int:
        per_gate = self.implementation == 1 or self.recurrent_dropout > 0
        return self.n_gates if per_gate else 1

    # ------------------------------------------------------------ projections
    def project_inputs(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        """``(x * mask) @ kernel + input_bias`` for ``x`` of shape ``(batch, [time,] input_dim)``."""
        step = x if x.dim() == 2 else x[:, 0]
        masks = self.dropout_masks(step, training)
        if masks is None:
            out = x @ self.kernel
        else:
            if x.dim() == 3:
                masks = [m.unsqueeze(1) for m in masks]
            out = _masked_matmul(x, masks, self.kernel, self.units)
        bias = self.input_bias
        return out if bias is None else out + bias

    def recurrent_matmul(self, h: torch.Tensor, kernel: torch.Tensor, training: bool,
                         first_gate: int = 0) -> torch.Tensor:
        """``(h * recurrent_mask) @ kernel``; ``kernel`` holds gates ``first_gate...``."""
        masks = self.recurrent_dropout_masks(h, training)
        if masks is None:
            return h @ kernel
        if len(masks) > 1:
            masks = masks[first_gate : first_gate + kernel.shape[1] // self.units]
        return _masked_matmul(h, masks, kernel, self.units)

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.units, implementation=self.implementation)
        return config

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}"


def _maybe(fn, value):
    return None if value is None else fn(value)


def _masked_matmul(x: torch.Tensor, masks: list[torch.Tensor], kernel: torch.Tensor, units: int) -> torch.Tensor:
    """``x * m @ kernel`` with one shared mask or one mask per gate block."""
    if len(masks) == 1:
        return (x * masks[0]) @ kernel
    blocks = kernel.split(units, dim=1)
    return torch.cat([(x * m) @ k for m, k in zip(masks, blocks)], dim=-1)
