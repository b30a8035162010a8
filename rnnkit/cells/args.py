"""Constructor arguments of the built-in cells and layers: described once, shown by ``help()``.

:func:`documented` is applied to each built-in cell and layer class. It

* appends an ``Args:`` section to the class docstring, one entry per
  parameter of the class's ``__init__`` in signature order, each described
  once in :data:`ARGS` (a class may pass its own wording as keywords), so
  ``help(rnnkit.LSTM)`` lists every argument and a new argument cannot go
  undocumented: one with no description is an error at import time;

``inspect.signature(cls)`` of every ``Layer`` class is its ``__init__``'s
(see ``rnnkit.engine.layer``), not the metaclass's ``(*args, **kwargs)``.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable

_LAYER_KWARGS = (
    "Other ``rnnkit.Layer`` arguments: ``input_shape``, ``input_dim`` (with ``input_length``), "
    "``batch_input_shape`` and ``batch_size`` build the weights at construction"
)

ARGS: dict[str, str] = {
    # ------------------------------------------------------------- cell shape
    "units": "Positive int: the size of the output and of each state.",
    "rank": "1, 2 or 3: the number of spatial axes (``ConvLSTM1D``, ``ConvLSTM2D``, ``ConvLSTM3D``).",
    "filters": "Positive int: the output channels of the convolutions (the channel size of the output and states).",
    "kernel_size": "Int or tuple of ``rank`` ints: the convolution window (input and recurrent convolutions).",
    "strides": "Int or tuple of ``rank`` ints: the input convolution's strides (the recurrent one uses 1).",
    "padding": "``\"valid\"`` or ``\"same\"`` (any case): the input convolution's padding (the recurrent one is "
               "always ``\"same\"``).",
    "data_format": "``\"channels_last\"`` (``None`` means this) or ``\"channels_first\"``: where the channel axis is.",
    "dilation_rate": "Int or tuple of ``rank`` ints: the input convolution's dilation; above 1 it excludes strides "
                     "above 1.",
    "cells": "List of cells (rnnkit cells or any objects with the cell protocol), run in order: each cell's "
             "output is the next one's input.",
    # ------------------------------------------------------------ cell math
    "activation": "Activation of the candidate and of the output (a name, a callable, or ``None`` for linear).",
    "recurrent_activation": "Activation of the gates (a name, a callable, or ``None`` for linear).",
    "use_bias": "Whether the cell adds a ``bias``.",
    "kernel_initializer": "Initializer of ``kernel``, the input weights (a name, an ``rnnkit.initializers`` "
                          "object or a callable).",
    "recurrent_initializer": "Initializer of ``recurrent_kernel``, the state weights.",
    "bias_initializer": "Initializer of ``bias``.",
    "unit_forget_bias": "If True, the forget-gate block of the bias starts at 1 (``bias_initializer`` fills the "
                        "others), as Jozefowicz et al., 2015 recommend.",
    "kernel_regularizer": "Regularizer of ``kernel``; its penalty is in ``losses``.",
    "recurrent_regularizer": "Regularizer of ``recurrent_kernel``; its penalty is in ``losses``.",
    "bias_regularizer": "Regularizer of ``bias``; its penalty is in ``losses``.",
    "activity_regularizer": "Regularizer of the layer's output; its penalty for the last call is in ``losses``.",
    "kernel_constraint": "Constraint projected onto ``kernel`` by ``apply_constraints()``.",
    "recurrent_constraint": "Constraint projected onto ``recurrent_kernel`` by ``apply_constraints()``.",
    "bias_constraint": "Constraint projected onto ``bias`` by ``apply_constraints()``.",
    "dropout": "Float in [0, 1): the fraction of the inputs dropped in training, one mask per sequence "
               "(variational dropout).",
    "recurrent_dropout": "Float in [0, 1): the fraction of the state ``h`` dropped in training before the "
                         "recurrent product, one mask per sequence and gate.",
    "seed": "Int or None: the seed of the dropout masks.",
    "implementation": "2: one input dropout mask shared by the gates; 1: one mask per gate (Keras's "
                      "implementation 1; without dropout the numbers are the same). 0, from old Keras configs, "
                      "is accepted and runs as 2, as in Keras 3.",
    "reset_after": "True (cuDNN and torch compatible): the reset gate multiplies ``h @ U_h + b_rh``, with a "
                   "separate recurrent bias; False (the original paper): it multiplies ``h`` before ``U_h``.",
    # ------------------------------------------------------------------- RNN
    "return_sequences": "Return the whole output sequence instead of the last output.",
    "return_state": "Also return the final states: ``[output, *states]``.",
    "go_backwards": "Process the sequence from its end; returned sequences are in processing (reversed) order, "
                    "as in Keras.",
    "stateful": "Keep the final states of each batch row as the next call's initial states "
                "(``reset_states()`` starts over).",
    "unroll": "Run the step-by-step loop (Keras's unrolled graph); never the fused kernel.",
    "zero_output_for_mask": "Output zeros at masked steps instead of repeating the previous output.",
    "time_major": "Inputs and outputs are ``(timesteps, batch, ...)``.",
    "use_fused": "``\"auto\"``: the fused kernel where the configuration allows it; ``True``: required (an error "
                 "otherwise); ``False``: the generic loop. ``rnnkit.explain`` says which path a call takes.",
    "use_cudnn": "Keras's name for ``use_fused``; any value but ``\"auto\"`` (or ``None``) overrides it.",
    "compile": "Run the loop through ``torch.compile`` (compiled on first use, per length of at most 32 steps: "
               "longer sequences run in chunks; see ``rnnkit.layers.compiled_loop``; each new batch size, "
               "training mode or grad mode compiles again, seconds to tens of seconds each: "
               "``rnnkit.explain`` reports them). A custom cell's step is "
               "traced, as compiling assumes it can be (a function of its inputs, states and weights): its ops "
               "on the input alone run once over all steps before the loop (``rnnkit.core.split_step``).",
    # ----------------------------------------------------------------- Layer
    "name": "The layer's name (default: the snake-cased class name, numbered); its cell is ``<name>_cell``.",
    "dtype": "Dtype of the weights and the computation: a name (``\"float32\"``, the default) or a "
             "``torch.dtype``; float inputs are cast to it.",
    "trainable": "If False, the weights are frozen (``requires_grad=False``).",
    "kwargs": _LAYER_KWARGS + "; any other name is a ``TypeError`` that suggests the closest accepted one.",
}

CELL_ARGS: dict[str, str] = {
    "name": "The cell's name (default: the snake-cased class name, numbered).",
    "kwargs": _LAYER_KWARGS + ", and ``activity_regularizer``; any other name is a ``TypeError`` that suggests "
              "the closest accepted one.",
}


def args_section(cls: type, overrides: dict[str, str]) -> str:
    """The ``Args:`` section for ``cls.__init__``'s parameters."""
    lines = ["Args:"]
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:  # type: ignore[misc]
        text = overrides.get(name) or ARGS.get(name)
        if text is None:
            raise TypeError(f"{cls.__name__}: argument {name!r} has no description in rnnkit.cells.args")
        label = f"**{name}" if param.kind is inspect.Parameter.VAR_KEYWORD else name
        lines.append(textwrap.fill(f"{label}: {text}", width=100, initial_indent="    ",
                                   subsequent_indent="        "))
    return "\n".join(lines)


def documented(**overrides: str) -> Callable[[type], type]:
    """Class decorator: the ``Args:`` section (see the module docstring)."""

    def decorate(cls: type) -> type:
        doc = inspect.cleandoc(cls.__doc__ or cls.__name__)
        cls.__doc__ = doc + "\n\n" + args_section(cls, overrides)
        return cls

    return decorate


def documented_cell(**overrides: str) -> Callable[[type], type]:
    """:func:`documented` with the cells' wording of ``name`` and ``**kwargs``."""
    return documented(**{**CELL_ARGS, **overrides})


def arguments(frame_locals: dict) -> dict:
    """A constructor's named arguments from its ``locals()`` (taken first thing); ``self`` and ``**kwargs`` left out."""
    return {k: v for k, v in frame_locals.items() if k not in ("self", "__class__", "kwargs")}
