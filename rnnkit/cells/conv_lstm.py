"""``ConvLSTMCell``: the LSTM with convolutions in place of matrix products.

Shi et al., 2015 (arXiv:1506.04214), as Keras 3's ``ConvLSTMCell``; the
equations and gate order (``i f c o``) are in the ``ConvLSTMCell`` docstring.

Shapes (``data_format="channels_last"``; ``channels_first`` puts the channel
axis right after the batch axis: ``(batch, channels, *spatial)``)::

    x_t           (batch, *spatial, channels)
    h, c, output  (batch, *out_spatial, filters)      out_spatial: the input conv's output size
    kernel            (*kernel_size, channels, 4*filters)     Keras layout
    recurrent_kernel  (*kernel_size, filters,  4*filters)
    bias              (4*filters,)

``state_size`` is ``[shape, shape]`` with ``shape`` the ``torch.Size``
``(*out_spatial, filters)`` (data-format order) computed at build time from the
input shape; before build it is ``[None, None]``. ``"same"`` padding follows
Keras: ``ceil(n / stride)`` outputs, the odd padding pixel at the end.

Weights stay in Keras layout (``get_weights`` / ``set_weights`` exchange arrays
with Keras directly); each convolution uses a permuted view ``(4*filters, in,
*kernel_size)``, torch's layout.

Dropout, as Keras's ``ConvLSTMCell`` (``dropout_mask_count = 4``): four masks
per sequence, one per gate, on the inputs (shape of ``x_t``) and, with
``recurrent_dropout``, on ``h``. The four masked copies run as one grouped
convolution (``groups=4``), gate ``g``'s copy against gate ``g``'s kernel.

Like the other built-in cells the step is split in two (``call`` is exactly
``recurrent_step(project_inputs(x))``): ``project_inputs`` takes one step
``(batch, ...)`` or every step ``(batch, time, ...)`` at once, the latter as a
single convolution over ``batch * time`` images; ``recurrent_step`` does the
recurrent convolution and the gates.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rnnkit.cells.args import arguments, documented_cell
from rnnkit.cells.base import GatedCell
from rnnkit.cells.lstm import UnitForgetBias, lstm_gates
from rnnkit.core.protocol import zero_states
from rnnkit.engine import activations

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_SPATIAL = {1: "steps", 2: "rows, cols", 3: "dim1, dim2, dim3"}


def conv_output_length(n: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Output size of a convolution along one axis (Keras / TF rules)."""
    if padding == "same":
        return (n + stride - 1) // stride
    return (n - (kernel - 1) * dilation - 1) // stride + 1


def same_padding(n: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """``(before, after)`` padding of ``"same"`` along one axis; the odd pixel goes after."""
    total = max((conv_output_length(n, kernel, stride, dilation, "same") - 1) * stride
                + (kernel - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


def _int_tuple(layer: str, arg: str, value: Any, rank: int) -> tuple[int, ...]:
    items = (value,) * rank if isinstance(value, int) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != rank or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items):
        raise ValueError(f"{layer}: {arg} must be a positive int or a tuple of {rank} positive ints, got {value!r}")
    return items


@documented_cell()
class ConvLSTMCell(GatedCell):
    """Cell of ``ConvLSTM1D/2D/3D``: one convolutional LSTM step; arguments and defaults as Keras 3.

    Gate order ``i f c o``; ``conv`` is a ``rank``-D convolution::

        z = conv(x_t, kernel, strides, padding, dilation_rate) + bias
          + conv(h_{t-1}, recurrent_kernel, strides=1, padding="same")
        i = recurrent_activation(z_i)        f = recurrent_activation(z_f)
        c_t = f * c_{t-1} + i * activation(z_c)
        o = recurrent_activation(z_o)
        h_t = o * activation(c_t)            output_t = h_t

    Shapes (``channels_last``; ``channels_first`` puts the channel axis right
    after the batch axis): ``x_t (batch, *spatial, channels)``, states
    ``[h, c]`` each ``(batch, *out_spatial, filters)``; weights ``kernel
    (*kernel_size, channels, 4*filters)``, ``recurrent_kernel (*kernel_size,
    filters, 4*filters)``, ``bias (4*filters,)``, blocks in gate order. The
    state shape comes from the input shape at build time (see the module
    docstring). Dropout draws one mask per gate, as Keras's ``ConvLSTMCell``.

    ``cell(inputs, [h, c], training=None) -> (h_t, [h_t, c_t])``; inputs and
    states may be tensors or numpy arrays (floats are cast to the cell's dtype).
    """

    n_gates = 4

    def __init__(
        self,
        rank: int,
        filters: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: Any = 1,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        unit_forget_bias: bool = True,
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
        args = arguments(locals())
        label = name or type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0:
            raise ValueError(f"{label}: filters must be a positive integer, got {filters!r}")
        if rank not in (1, 2, 3) or isinstance(rank, bool):
            raise ValueError(f"{label}: rank must be 1, 2 or 3, got {rank!r}")
        own = ("rank", "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
               "recurrent_activation", "unit_forget_bias")
        super().__init__(**{k: v for k, v in args.items() if k not in own}, **kwargs)
        self.rank = rank
        self.filters = filters
        self.kernel_size = _int_tuple(self.name, "kernel_size", kernel_size, rank)
        self.strides = _int_tuple(self.name, "strides", strides, rank)
        self.dilation_rate = _int_tuple(self.name, "dilation_rate", dilation_rate, rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{self.name}: strides > 1 is not compatible with dilation_rate > 1, "
                f"got strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"{self.name}: padding must be 'valid' or 'same', got {padding!r}")
        self.data_format = "channels_last" if data_format is None else str(data_format).lower()
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                f"{self.name}: data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
            )
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self._state_shape: torch.Size | None = None

    # ------------------------------------------------------------ protocol
    @property
    def state_size(self) -> list:
        return [self._state_shape, self._state_shape]

    @property
    def output_size(self) -> torch.Size | None:
        return self._state_shape

    @property
    def channels_last(self) -> bool:
        """Whether the channel axis is the last one (``data_format="channels_last"``)."""
        return self.data_format == "channels_last"

    def split_shape(self, shape: tuple) -> tuple[tuple, Any]:
        """``(spatial, channels)`` of a step shape ``(batch, ...)``."""
        return (shape[1:-1], shape[-1]) if self.channels_last else (shape[2:], shape[1])

    def step_layout(self) -> str:
        """The axes of one step's input, for error messages: ``"(batch, rows, cols, channels)"`` ..."""
        dims = _SPATIAL[self.rank]
        return f"(batch, {dims}, channels)" if self.channels_last else f"(batch, channels, {dims})"

    def compute_output_shape(self, inputs_shape: tuple, states_shape: Any = None) -> tuple:
        """``(output_shape, [h_shape, c_shape])`` for one step of ``inputs_shape`` (Keras convention)."""
        inputs_shape = tuple(inputs_shape)
        if len(inputs_shape) != self.rank + 2:
            raise ValueError(
                f"{self.name}: expected step inputs of rank {self.rank + 2} {self.step_layout()}, "
                f"got shape {inputs_shape}"
            )
        spatial, _ = self.split_shape(inputs_shape)
        lengths: list[int | None] = []
        for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            length = None if n is None else conv_output_length(int(n), k, s, d, self.padding)
            if length is not None and length <= 0:
                raise ValueError(
                    f"{self.name}: the input's spatial shape {tuple(spatial)} is too small for kernel_size="
                    f"{self.kernel_size}, dilation_rate={self.dilation_rate} with padding='valid' "
                    f"(output size would be {length})"
                )
            lengths.append(length)
        out = tuple(lengths)
        shape = (inputs_shape[0],) + (out + (self.filters,) if self.channels_last else (self.filters,) + out)
        return shape, [shape, shape]

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        state = self.compute_output_shape(shape)[0]
        spatial, channels = self.split_shape(shape)
        if channels is None or None in spatial:
            raise ValueError(
                f"{self.name}: the channel and spatial dimensions must be known to build, got input shape {shape}"
            )
        self.input_dim = int(channels)
        self.spatial_dims = tuple(int(n) for n in spatial)
        self._state_shape = torch.Size(state[1:])
        self._input_pads = [
            same_padding(n, k, s, d) if self.padding == "same" else (0, 0)
            for n, k, s, d in zip(self.spatial_dims, self.kernel_size, self.strides, self.dilation_rate)
        ]
        self._recurrent_pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in self.kernel_size]
        g = self.n_gates * self.filters
        self._add_weights(self.kernel_size + (self.input_dim, g), self.kernel_size + (self.filters, g))

    def _bias_shape(self) -> tuple:
        return (self.n_gates * self.filters,)

    def _bias_initializer(self) -> Any:
        return UnitForgetBias(self.bias_initializer, self.filters) if self.unit_forget_bias else self.bias_initializer

    def get_initial_state(self, batch_size: int | None = None) -> list[torch.Tensor]:
        if self._state_shape is None:
            raise ValueError(
                f"{self.name}: the state shape comes from the input shape; build the cell first "
                f"(call it, or cell.build(input_shape) with input_shape {self.step_layout()})"
            )
        return zero_states([self._state_shape] * 2, batch_size, self.dtype, self.kernel.device)

    # ------------------------------------------------------------ convolutions
    def _conv(self, x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, strides: tuple,
              dilation: tuple, pads: list, groups: int) -> torch.Tensor:
        """``x`` ``(n, *spatial_and_channels)`` in ``data_format`` -> conv output, same layout.

        ``kernel`` is in Keras layout ``(*k, in, out)``; with ``groups`` > 1 the
        input holds ``groups`` copies along the channel axis.
        """
        r = self.rank
        weight = kernel.permute(r + 1, r, *range(r))  # (out, in, *k): torch's layout
        if self.channels_last:
            x = x.movedim(-1, 1)  # a view: torch reads it as channels_last memory format
        if any(a != b for a, b in pads):
            x = F.pad(x, [p for pair in reversed(pads) for p in pair])
            padding: Any = 0
        else:
            padding = tuple(a for a, _ in pads)
        out = _CONV[r](x, weight, bias, strides, padding, dilation, groups)
        return out.movedim(1, -1) if self.channels_last else out

    def _masked(self, x: torch.Tensor, masks: list[torch.Tensor] | None, channel_axis: int) -> torch.Tensor:
        """``x`` itself, or its four masked copies side by side on the channel axis."""
        if masks is None:
            return x
        return torch.cat([x * m for m in masks], dim=channel_axis)

    def project_inputs(self, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        """``conv(x * mask, kernel) + bias`` for one step ``(batch, ...)`` or all steps ``(batch, time, ...)``."""
        all_steps = x.dim() == self.rank + 3
        if not all_steps and x.dim() != self.rank + 2:
            raise ValueError(
                f"{self.name}: expected inputs of rank {self.rank + 2} {self.step_layout()} or "
                f"{self.rank + 3} with a time axis after the batch axis, got shape {tuple(x.shape)}"
            )
        lead = tuple(x.shape[:2]) if all_steps else tuple(x.shape[:1])
        masks = self.dropout_masks(x[:, 0] if all_steps else x, training)
        if masks is not None and all_steps:
            masks = [m.unsqueeze(1) for m in masks]
        channel_axis = -1 if self.channels_last else len(lead)
        x = self._masked(x, masks, channel_axis)
        x = x.reshape((-1,) + tuple(x.shape[len(lead):]))  # (batch * time, ...): one convolution
        out = self._conv(x, self.kernel, self.bias, self.strides, self.dilation_rate, self._input_pads,
                         1 if masks is None else len(masks))
        return out.reshape(lead + tuple(out.shape[1:]))

    def recurrent_step(self, x_proj: torch.Tensor, states: Any, training: bool = False):
        """Recurrent convolution and gates; ``x_proj`` is one step of :meth:`project_inputs`."""
        h_prev, c_prev = states[0], states[1]
        channel_axis = -1 if self.channels_last else 1
        masks = self.recurrent_dropout_masks(h_prev, training)
        ones = (1,) * self.rank
        z = x_proj + self._conv(self._masked(h_prev, masks, channel_axis), self.recurrent_kernel, None, ones, ones,
                                self._recurrent_pads, 1 if masks is None else len(masks))
        h, c = lstm_gates(z, c_prev, self.activation, self.recurrent_activation, axis=channel_axis)
        return h, [h, c]

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            rank=self.rank,
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            recurrent_activation=activations.serialize(self.recurrent_activation),
            unit_forget_bias=self.unit_forget_bias,
        )
        return config

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, rank={self.rank}, filters={self.filters}, kernel_size={self.kernel_size}, "
                f"padding={self.padding!r}, data_format={self.data_format!r}")
