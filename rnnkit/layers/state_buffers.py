"""``StateBuffers``: where a stateful recurrent layer keeps its states between calls.

The states are persistent buffers ``state_0``, ``state_1``, ... (depth-first
order of the cell's nesting), so they follow ``.to()`` / ``.double()`` and
travel in ``state_dict()`` with a ``states_zeroed`` flag: a stream resumes
after a checkpoint, and a fresh layer accepts a checkpoint's states.
``layer.states`` reads them back nested as the cell's own states.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from rnnkit.core.sequences import check_states
from rnnkit.core.tree import flatten, pack_as

_FLAT = "flat"  # _states_structure of a flat list of states


class StateBuffers(torch.nn.Module):
    """The states half of ``RNN`` (see the module docstring).

    The layer provides ``stateful``, ``dtype``, ``name``, ``state_size``,
    ``_states_zeroed``, ``_device()`` and ``_nest(flat_states)``.
    """

    stateful: bool
    _states_zeroed: bool
    dtype: Any
    name: str
    state_size: Any

    def _device(self) -> torch.device | None:
        raise NotImplementedError

    def _nest(self, states: list) -> list:
        raise NotImplementedError

    @property
    def states(self) -> list | None:
        """A stateful layer's stored states, nested as the cell's own; None before there are any.

        They are persistent buffers ``state_0``, ``state_1``, ... (depth-first
        order), so they follow ``.to()`` / ``.double()`` and travel in
        ``state_dict()``: a stream resumes after a checkpoint.
        """
        n = self.__dict__.get("_n_states", 0)
        if not n:
            return None
        buffers = self._buffers
        leaves = [buffers[f"state_{i}"] for i in range(n)]
        structure = self.__dict__.get("_states_structure")
        if structure is None:  # loaded from a state_dict into a fresh layer: the cell's nesting
            nested = self._nest(leaves)
            structure = _FLAT if nested is leaves else pack_as(nested, [None] * n)
            self.__dict__["_states_structure"] = structure
        return leaves if structure == _FLAT else pack_as(structure, leaves)  # (==: copies hold equal strings)

    @states.setter
    def states(self, value: list | None) -> None:
        self._store_states(value)

    def stored_batch_size(self) -> int | None:
        """The batch size of the stored states (None before there are any)."""
        first = self._buffers.get("state_0")
        return None if first is None else int(first.shape[0])

    def _store_states(self, value: list | None) -> None:
        """Register ``value``'s tensors as the state buffers ``state_0``, ``state_1``, ... and keep its nesting."""
        structure = None
        if value is None:
            leaves = []
        elif all(isinstance(v, torch.Tensor) for v in value):
            leaves, structure = list(value), _FLAT
        else:
            leaves = flatten(value)
            structure = pack_as(value, [None] * len(leaves))
        buffers = self._buffers
        for i in range(len(leaves), self.__dict__.get("_n_states", 0)):
            del buffers[f"state_{i}"]
        for i, t in enumerate(leaves):
            buffers[f"state_{i}"] = t
        self.__dict__["_n_states"] = len(leaves)
        self.__dict__["_states_structure"] = structure

    def reset_states(self, states: Any = None) -> None:
        """Zero the stored states, or set them to ``states`` (arrays, Keras order)."""
        if not self.stateful:
            raise AttributeError(f"{self.name}: reset_states() needs a stateful layer (stateful=True)")
        if states is None:
            if self.states is None:
                return
            self.states = pack_as(self.states, [torch.zeros_like(s) for s in flatten(self.states)])
            self._states_zeroed = True
            return
        flat = flatten(list(states) if isinstance(states, (list, tuple)) else [states])
        batch = flat[0].shape[0]
        expected = self.stored_batch_size()
        if expected is not None and batch != expected:
            raise ValueError(
                f"{self.name}: reset_states got states for batch size {batch}, "
                f"but the layer's states have batch size {expected}"
            )
        self.states = self._nest(
            check_states(states, self.state_size, batch, self.name, self.dtype, self._device(), what="states")
        )
        self._states_zeroed = False  # set states are the layer's to keep, for their batch size

    def reset_state(self) -> None:
        """Keras 3's name for :meth:`reset_states` with no states."""
        self.reset_states()

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.__dict__.get("_n_states", 0):  # the 'zeroed' flag travels with the states
            destination[prefix + "states_zeroed"] = torch.tensor(self._states_zeroed)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        stored: list[torch.Tensor] = []  # (a layer that is not stateful reports them as unexpected)
        while self.stateful and f"{prefix}state_{len(stored)}" in state_dict:
            stored.append(state_dict[f"{prefix}state_{len(stored)}"])
        # ``_store_states`` registers every state buffer as a tensor
        current = [cast(torch.Tensor, self._buffers[f"state_{i}"]) for i in range(self.__dict__.get("_n_states", 0))]
        if [tuple(t.shape) for t in stored] != [tuple(t.shape) for t in current]:
            # states exist after a call with a known batch size: the checkpoint's define them
            if stored:
                device = self._device() or self.__dict__.get("_device_hint")
                # nested as the cell's own states once the cell is loaded (structure None)
                self._store_states([torch.empty(t.shape, dtype=self.dtype, device=device) for t in stored])
                self.__dict__["_states_structure"] = None
            elif any(k.startswith(prefix) for k in state_dict):
                self.states = None  # a checkpoint taken before the first call
        flag = prefix + "states_zeroed"
        if flag in state_dict:
            self._states_zeroed = bool(state_dict[flag])
            state_dict = {k: v for k, v in state_dict.items() if k != flag}
        elif stored:
            self._states_zeroed = False
        elif self.states is None:
            self._states_zeroed = True
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
