"""The bottom of rnnkit: the cell protocol, sequence helpers and the one loop.

Nothing here imports from the rest of the package.
"""

from rnnkit.core.loop import rnn
from rnnkit.core.protocol import call_accepts, cell_output_size, cell_step_function, check_cell, zero_states
from rnnkit.core.sequences import lengths_to_mask, reverse_valid

__all__ = ["call_accepts", "cell_output_size", "cell_step_function", "check_cell", "lengths_to_mask", "reverse_valid",
           "rnn", "zero_states"]
