"""``StackedRNNCells``: several cells run as one, each feeding the next.

At each step, with cells ``c_1 ... c_n`` and their states ``s_1 ... s_n``::

    y_0 = x_t
    y_k, s_k' = c_k(y_{k-1}, s_k)          for k = 1..n
    output_t = y_n,  new_states = [s_1', ..., s_n']

States are nested as in Keras 3: one entry per cell, a tensor for a cell whose
``state_size`` is an int, a list for a cell with several states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rnnkit.cells.args import documented_cell
from rnnkit.core.protocol import call_accepts, cell_call_fn, cell_method, cell_output_size, check_cell, zero_states
from rnnkit.engine.layer import Layer
from rnnkit.engine.serialization import deserialize_layer, serialize_layer


@documented_cell()
class StackedRNNCells(Layer):
    """Wrap a list of cells so that ``RNN`` runs them as one stacked cell (see the module docstring).

    ``state_size`` and the states are nested, one entry per cell; the output
    is the last cell's.
    """

    def __init__(self, cells: Sequence[Any], name: str | None = None, dtype: Any = None, trainable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        cells = list(cells)
        if not cells:
            raise ValueError(f"{self.name}: needs at least one cell, got an empty list")
        for i, cell in enumerate(cells):
            check_cell(cell, self.name, f"cell {i}")
        self.cells = torch.nn.ModuleList(cells) if all(isinstance(c, torch.nn.Module) for c in cells) else cells
        self._accepts_training = [call_accepts(cell_method(c), "training") for c in cells]

    @property
    def state_size(self) -> list:
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> Any:
        return cell_output_size(self.cells[-1])

    def get_initial_state(self, batch_size: int | None = None) -> list:
        """One entry per cell, as the cell's own ``get_initial_state`` returns it (Keras 3)."""
        states = []
        for cell in self.cells:
            fn = getattr(cell, "get_initial_state", None)
            if fn is not None:
                states.append(fn(batch_size=batch_size))
            else:
                zeros = zero_states(cell.state_size, batch_size, self.dtype)
                states.append(zeros if isinstance(cell.state_size, (list, tuple)) else zeros[0])
        return states

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        cell: Any  # any object with the cell protocol: ``build`` and ``built`` are optional
        for cell in self.cells:
            if hasattr(cell, "build") and not getattr(cell, "built", False):
                cell.build(shape)
                cell.built = True
            size = cell_output_size(cell)
            shape = shape[:1] + (tuple(size) if isinstance(size, (list, tuple)) else (size,))
        self.built = True

    @property
    def dtype(self) -> torch.dtype:
        first = self.cells[0]
        return first.dtype if isinstance(first, Layer) else super().dtype

    def reset_dropout_masks(self) -> None:
        cell: Any  # any object with the cell protocol: ``reset_dropout_masks`` is optional
        for cell in self.cells:
            if hasattr(cell, "reset_dropout_masks"):
                cell.reset_dropout_masks()

    def call(self, inputs: torch.Tensor, states: Any, training: bool | None = None, **kwargs: Any):
        if not isinstance(states, (list, tuple)) or len(states) != len(self.cells):
            got = len(states) if isinstance(states, (list, tuple)) else type(states).__name__
            raise ValueError(f"{self.name}: expected one state entry per cell ({len(self.cells)}), got {got}")
        new_states = []
        for cell, s, wants_training in zip(self.cells, states, self._accepts_training):
            nested = isinstance(s, (list, tuple))
            kw = dict(kwargs, training=training) if wants_training else kwargs
            inputs, s_new = cell_call_fn(cell)(inputs, list(s) if nested else [s], **kw)
            if not isinstance(s_new, (list, tuple)):
                s_new = [s_new]
            new_states.append(list(s_new) if nested or len(s_new) > 1 else s_new[0])
        return inputs, new_states

    def get_config(self) -> dict:
        config = super().get_config()
        config["cells"] = [serialize_layer(c) for c in self.cells]
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> StackedRNNCells:
        config = dict(config)
        cells = [deserialize_layer(c, custom_objects) for c in config.pop("cells")]
        return cls(cells, **config)
