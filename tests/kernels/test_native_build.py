"""The native kernel builds wherever it can: a failed build must fail a test, not skip the native kernel's tests."""

import os
import shutil

import pytest
from torch.utils import cpp_extension

from rnnkit.kernels import native


def test_the_native_kernel_builds_where_a_compiler_is():
    if os.environ.get("RNNKIT_NATIVE", "1") == "0":
        pytest.skip("RNNKIT_NATIVE=0 turns the native kernel off")
    if not cpp_extension.is_ninja_available() or shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no ninja or C++ compiler here: the native kernel cannot be built")
    assert native.unavailable() is None, native.unavailable()
