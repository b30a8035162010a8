"""``RNN``: the generic recurrent layer over any cell (or list of cells).

``layer(sequences, initial_state=None, mask=None, training=None, constants=None)``

* ``sequences``: ``(batch, timesteps, features...)``, or
  ``(timesteps, batch, ...)`` with ``time_major=True``.
* returns ``outputs`` ``(batch, timesteps, output_size)`` with ``return_sequences`` else the last output
  ``(batch, output_size)``; with ``return_state`` a list ``[output, *final_states]``.
* ``go_backwards``: the sequence is processed from its end and the returned
  sequence is in processing order (reversed), as in Keras.
* ``mask``: boolean ``(batch, timesteps)``, True = use the step; masked steps carry the states and repeat
  the previous output (zeros with ``zero_output_for_mask``). When None, a ``_keras_mask`` attribute of the
  input is used; the returned sequence carries the mask on the same way.
* ``stateful``: the final states become the next call's initial states
  (detached from the graph); ``reset_states(states=None)`` zeroes or sets them.
* ``training``: None means ``self.training`` (PyTorch's ``train()``/``eval()``);
  passed to the cell only when its ``call`` accepts it, as is ``constants``.

The loop itself is :func:`rnnkit.core.loop.rnn`; this layer only prepares its
arguments, as Keras's ``RNN.inner_loop`` does.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from rnnkit.cells.args import documented
from rnnkit.cells.stacked import StackedRNNCells
from rnnkit.core.loop import rnn
from rnnkit.core.protocol import (
    call_accepts,
    cell_method,
    cell_output_size,
    cell_step_function,
    check_cell,
    initial_states,
    reset_dropout,
)
from rnnkit.core.sequences import as_tensor, attach_mask, check_mask, check_sequences, check_states
from rnnkit.core.tree import flatten, pack_as
from rnnkit.engine.layer import Layer
from rnnkit.engine.serialization import deserialize_layer, serialize_layer
from rnnkit.kernels.fused import fused_rnn
from rnnkit.kernels.ops import autocast_dtype_for
from rnnkit.kernels.path import FUSED, HOISTED, Plan, check_use_fused, select_path
from rnnkit.kernels.spec import capturing_graph, spec_for, zero_initial
from rnnkit.layers.call_plan import call_with_plan, keep_plan
from rnnkit.layers.compiled_loop import compile_report, run_compiled
from rnnkit.layers.prepared import PreparedCall, shortcut_call
from rnnkit.layers.state_buffers import StateBuffers


@documented(
    cell="A cell (an object with ``state_size`` and ``call(inputs, states) -> (output, new_states)``, see "
         "``rnnkit.core.protocol``) or a list of cells (run as ``StackedRNNCells``).",
)
class RNN(StateBuffers, Layer):
    """Generic recurrent layer; see the module docstring for the call contract."""

    def __init__(
        self,
        cell: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        time_major: bool = False,
        use_fused: Any = "auto",
        compile: bool = False,
        **kwargs: Any,
    ) -> None:
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        super().__init__(**kwargs)
        check_cell(cell, self.name)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.time_major = bool(time_major)
        self.use_fused = check_use_fused(self.name, use_fused)
        self.compile_loop = bool(compile)  # not `self.compile`: that is nn.Module.compile()
        self._compiled_loops: dict = {}  # compiled_loop's key (kind of step and chunk) -> compiled loop
        self.states = None
        self._states_zeroed = True  # zero states may be re-created for another batch size
        self._feature_shape: tuple | None = None
        self._builtin_cell = spec_for(cell) is not None  # its initial states follow its weights' device
        method = cell_method(cell)
        self._cell_takes_training = call_accepts(method, "training")
        self._cell_takes_constants = call_accepts(method, "constants")

    __call__ = call_with_plan  # a kept plan before the module call's machinery (rnnkit.layers.call_plan)

    def __getstate__(self) -> dict:
        # copies and pickles compile their own loop (the compiled one is bound to this instance)
        return dict(super().__getstate__(), _compiled_loops={}, _split_steps={}, _call_plans={}, _compile_log=[])

    def compiled_report(self) -> str | None:
        """With ``compile=True``, what its compiled loop has compiled so far and the seconds the compiling calls
        took (:func:`rnnkit.layers.compiled_loop.compile_report`; shown by :func:`rnnkit.explain`); else None."""
        return compile_report(self) if self.compile_loop else None

    @property
    def cell(self) -> Any:
        """The layer's cell: a registered submodule when it is a torch module (a class attribute, so that
        the calls reading it skip ``nn.Module.__getattr__``)."""
        found = self._modules.get("cell")
        return found if found is not None else self.__dict__["_cell"]

    @cell.setter
    def cell(self, value: Any) -> None:  # reached for a cell that is not a torch module
        self.__dict__["_cell"] = value

    # ------------------------------------------------------------------ sizes
    @property
    def state_size(self) -> list:
        s = self.cell.state_size
        return list(s) if isinstance(s, (list, tuple)) else [s]

    @property
    def feature_shape(self) -> tuple | None:
        """The shape of one step's features (the input shape after batch and time), once known."""
        return self._feature_shape

    @property
    def dtype(self) -> torch.dtype:
        return self.cell.dtype if isinstance(self.cell, Layer) else super().dtype

    def _batch_time_axes(self) -> tuple[int, int]:
        return (1, 0) if self.time_major else (0, 1)

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        if len(input_shape) < 3:
            raise ValueError(
                f"{self.name}: expected input of rank 3 or more (batch, timesteps, features...), "
                f"got shape {input_shape}"
            )
        b_axis, _ = self._batch_time_axes()
        batch = input_shape[b_axis]
        self._feature_shape = tuple(input_shape[2:])
        if hasattr(self.cell, "build") and not getattr(self.cell, "built", False):
            self.cell.build((batch,) + self._feature_shape)
            self.cell.built = True
        if self.stateful and batch is not None and self.states is None:  # (loaded states stay)
            self.states = initial_states(self.cell, batch, self.dtype)
            self._states_zeroed = False  # the batch size was given: hold the layer to it
        self.built = True

    def input_shape_from_weights(self, weights: dict) -> tuple | None:
        """``(None, None, *features)`` from the (first) cell's stored weights; see ``Layer``."""
        cell, prefix = self.cell, "cell."
        if isinstance(cell, StackedRNNCells):
            cell, prefix = cell.cells[0], "cell.cells.0."
        if not isinstance(cell, Layer):
            return None
        shape = cell.input_shape_from_weights({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
        return None if shape is None else (None, None) + tuple(shape[1:])

    def compute_output_shape(self, input_shape: tuple) -> Any:
        b_axis, t_axis = self._batch_time_axes()
        batch, steps = input_shape[b_axis], input_shape[t_axis]
        size = cell_output_size(self.cell)
        size = tuple(size) if isinstance(size, (list, tuple)) else (size,)
        if self.return_sequences:
            out = (steps, batch) + size if self.time_major else (batch, steps) + size
        else:
            out = (batch,) + size
        if not self.return_state:
            return out
        from rnnkit.core.sequences import state_shapes

        return [out] + [state_shapes(s, batch) for s in self.state_size]

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """Keras's ``RNN.compute_mask``: ``mask`` with ``return_sequences`` (as given, also with
        ``go_backwards``), else None; with ``return_state`` ``[output_mask] + [None] * n_states``."""
        if isinstance(mask, (list, tuple)):
            mask = flatten(list(mask))[0] if mask else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    # ------------------------------------------------------------------- call
    def _device(self) -> torch.device | None:
        records = getattr(self.cell, "_weight_records", None)
        if records:  # the common case, without walking the module tree
            return self.cell.weight_by_key(records[0]["key"]).device
        for p in self.parameters():
            return p.device
        return None

    def prepare(self, sequences, initial_state=None, mask=None, training=None, constants=None) -> PreparedCall:
        """Convert and validate one call's arguments: the :class:`PreparedCall` every path runs on."""
        x, states, mask, constants = self._prepare(sequences, initial_state, mask, constants)
        training = self.training if training is None else bool(training)
        # (stored states may be anything; a cell may override its initial states)
        zero = initial_state is None and not self.stateful and zero_initial(self.cell)
        return PreparedCall(self, x, states, mask, training, constants, zero)

    def _prepare(self, sequences, initial_state, mask, constants):
        """Convert and validate the call arguments; returns them ready for the loop."""
        if mask is None:
            mask = getattr(sequences, "_keras_mask", None)
        dtype = self.dtype
        x = as_tensor(sequences, dtype, self._device(), "input", self.name)
        check_sequences(x, self.name, self._feature_shape)
        if self._feature_shape is None:
            self._feature_shape = tuple(x.shape[2:])
        if self.time_major:
            x = x.transpose(0, 1)  # the one layout conversion: batch-major inside
        batch, steps = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError(
                f"{self.name}: expected at least one timestep, got 0 timesteps (input shape {tuple(x.shape)})"
            )
        if mask is not None:
            mask = check_mask(mask, batch, steps, self.name, x.device)
        stored = self.states if self.stateful else None
        if stored is not None:
            expected = self.stored_batch_size()
            if self._states_zeroed and expected != batch:  # reset: any batch size may start over
                self.states = stored = None
            elif batch != expected:
                raise ValueError(
                    f"{self.name}: this stateful layer holds states for batch size {expected}, "
                    f"got inputs with batch size {batch}; call reset_states() to start over "
                    "with another batch size"
                )
        if initial_state is not None:
            states = self._nest(check_states(initial_state, self.state_size, batch, self.name, dtype, x.device))
        elif stored is not None:
            states = stored
        else:
            states = initial_states(self.cell, batch, dtype)
            if not self._builtin_cell:  # a custom cell's own initial states may sit on another device
                states = pack_as(states, [s.to(x.device) for s in flatten(states)])
        if constants is not None:
            if not self._cell_takes_constants:
                raise ValueError(
                    f"{self.name}: constants were given but the cell {type(self.cell).__name__}'s call "
                    "does not accept a `constants` argument"
                )
            constants = [as_tensor(c, dtype, x.device, "constants", self.name) for c in
                         (constants if isinstance(constants, (list, tuple)) else [constants])]
        return x, states, mask, constants

    def step_function(self, training: bool, constants: list | None):
        """``(x_t, states) -> (output_t, new_states)`` calling the cell."""
        kwargs: dict = {}
        if self._cell_takes_training:
            kwargs["training"] = training
        if constants is not None:
            kwargs["constants"] = constants
        return cell_step_function(self.cell, **kwargs)

    def forward(self, sequences, initial_state=None, mask=None, training=None, constants=None):
        """The layer's call with its arguments named (``torch.export``'s ``dynamic_shapes`` uses the names)."""
        return self.call(sequences, initial_state, mask, training, constants)

    def call(self, sequences, initial_state=None, mask=None, training=None, constants=None):
        plain = mask is None and constants is None and type(sequences) is torch.Tensor
        if plain:
            result = shortcut_call(self, sequences, initial_state, training)
            if result is not None:
                return result
        result = self.prepare(sequences, initial_state, mask, training, constants).run()
        if plain and initial_state is not None and not capturing_graph():
            keep_plan(self, sequences, training, initial_state=True)  # (rnnkit.layers.call_plan)
        return result

    def path_for(self, call: PreparedCall) -> Plan:
        """The path (fused kernel, hoisted or generic loop) a prepared call of this layer takes."""
        return select_path(self, call.mask, call.training, call.constants is not None)

    def run_prepared(self, call: PreparedCall):
        """``(last, outputs, new_states)`` of a prepared call on the path its plan picks."""
        plan = call.plan()
        if plan.path != FUSED and torch.jit.is_tracing():
            raise RuntimeError(
                f"{self.name}: torch.jit.trace would record the {plan.path} loop unrolled for "
                f"{call.inputs.shape[1]} timesteps, wrong for any other length; use torch.compile or "
                f"torch.export (they handle every path), or a fusable configuration ({'; '.join(plan.reasons)})"
            )
        reset_dropout(self.cell)
        try:
            if plan.path == FUSED:
                result = self.run_fused(call.inputs, call.states, call.mask, call.training, call.zero_states)
                if result is not None:
                    return result  # else: a mask with holes, eagerly: the hoisted loop below
            hoisted = plan.path in (HOISTED, FUSED)
            loop = partial(run_compiled, self) if self.compile_loop else self.loop
            return loop(hoisted, call.inputs, call.states, call.mask, call.training, call.constants)
        finally:
            reset_dropout(self.cell)

    def run_fused(self, x, states, mask, training: bool, zero_states: bool = False):
        """``(last, outputs, new_states)`` on a fused kernel (:func:`rnnkit.kernels.fused.fused_rnn`), or
        None (a mask with holes and no native kernel: the caller runs the hoisted loop)."""
        return fused_rnn(self, x, states, mask, training, zero_states)

    def loop(self, hoisted: bool, x, states, mask, training: bool, constants, split=None, weights=None):
        """The generic loop (``hoisted``: over pre-projected inputs, recurrent part only; ``split``: a
        :class:`rnnkit.core.split_step.SplitStep` of the cell's step, ``x`` its input part's values of all steps
        and ``weights`` the cell's, the loop runs its recurrent part)."""
        if split is not None:
            inputs, step = x, split.step_function(weights)
        elif hoisted:
            inputs, step = self.cell.project_inputs(x, training), self.hoisted_step(training)
        else:
            inputs, step = x, self.step_function(training, constants)
        return rnn(
            step,
            inputs,
            states,
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def hoisted_step(self, training: bool):
        """Step over pre-projected inputs: only the cell's recurrent part."""
        recurrent_step = self.cell.recurrent_step

        def step(x_proj_t, states):
            return recurrent_step(x_proj_t, states, training)

        return step

    def finish_call(self, last, outputs, new_states, mask):
        """What the layer's call returns from a path's raw results: stateful bookkeeping,
        output mask and the return convention."""
        device_type = "cpu" if outputs.is_cpu else outputs.device.type
        target = autocast_dtype_for(self.cell, device_type, self.dtype) if torch.is_autocast_enabled(
            device_type) else None
        if target is not None:  # every path returns what the torch.nn twin returns under autocast
            last, outputs = last.to(target), outputs.to(target)
            # (None: a state no caller reads, left unmade; see rnnkit.kernels.ops.right_padded_call)
            new_states = pack_as(new_states, [s if s is None else s.to(target) for s in flatten(new_states)])
        if self.stateful:
            if all(type(s) is torch.Tensor for s in new_states):  # flat (built-in cells)
                self._store_states([s.detach() if s.requires_grad else s for s in new_states])
            else:
                self._store_states(pack_as(new_states, [s.detach() for s in flatten(new_states)]))
            if self._states_zeroed:
                self._states_zeroed = False
        if self.return_sequences:
            output = outputs.transpose(0, 1) if self.time_major else outputs
            attach_mask(output, mask)
        else:
            output = last
        if self.return_state:
            return [output, *new_states]
        return output

    # -------------------------------------------------------------- stateful
    def _nest(self, states: list) -> list:
        """User-given states nested as the cells' own initial states (Keras 3 for stacked cells)."""
        if isinstance(self.cell, StackedRNNCells):
            return pack_as(self.cell.get_initial_state(1), flatten(states))
        return states

    def get_initial_state(self, batch_size: int) -> list:
        return initial_states(self.cell, batch_size, self.dtype)

    # ----------------------------------------------------------------- config
    def _rnn_config(self) -> dict:
        names = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask",
                 "time_major", "use_fused")
        return {**{name: getattr(self, name) for name in names}, "compile": self.compile_loop}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(self._rnn_config())
        config["cell"] = serialize_layer(self.cell)
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> RNN:
        config = dict(config)
        cell = deserialize_layer(config.pop("cell"), custom_objects)
        return cls(cell, **config)

    def extra_repr(self) -> str:
        flags = [k for k, v in self._rnn_config().items() if v is True]
        return f"name={self.name!r}" + (", " + ", ".join(flags) if flags else "")
