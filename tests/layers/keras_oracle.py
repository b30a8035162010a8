"""Helpers shared by the non-recurrent layer tests: Keras 3 (torch backend) as the oracle.

``check_against_keras`` builds both layers on the same inputs, copies the
Keras weights into rnnkit (``set_weights(keras.get_weights())``), asserts
that the weight lists agree in order and shape, and compares the outputs,
the gradients of ``sum(output * probe)`` with respect to every input and
every trainable weight (the probe is a fixed random tensor, so the gradient
is not trivially uniform).
"""

import inspect

import numpy as np
import torch
from conftest import to_numpy

NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _tensors(inputs, requires_grad):
    if isinstance(inputs, (list, tuple)):
        return [torch.tensor(np.asarray(x), requires_grad=requires_grad) for x in inputs]
    return torch.tensor(np.asarray(inputs), requires_grad=requires_grad)


def _leaves(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _value(t):
    return t.value if hasattr(t, "value") else t


def _run(layer, inputs, keras_masks, call_kwargs, weights, probe_seed):
    xs = _tensors(inputs, requires_grad=True)
    if keras_masks is not None:  # Keras's merge layers read the masks attached to their inputs
        for x, m in zip(_leaves(xs), keras_masks):
            if m is not None:
                x._keras_mask = torch.tensor(np.asarray(m))
    out = _value(layer(xs, **call_kwargs))
    generator = torch.Generator().manual_seed(probe_seed)
    probe = torch.randn(out.shape, generator=generator, dtype=out.dtype)
    targets = _leaves(xs) + [_value(w) for w in weights]
    grads = torch.autograd.grad((out * probe).sum(), targets, allow_unused=True)
    return to_numpy(out), [None if g is None else to_numpy(g) for g in grads]


def check_against_keras(keras_layer, layer, inputs, *, call_kwargs=None, keras_call_kwargs=None, keras_masks=None,
                        rtol=1e-5, atol=1e-6, grads=True):
    """Assert rnnkit ``layer`` == ``keras_layer`` on ``inputs`` (outputs, then gradients); return rnnkit's output."""
    call_kwargs = dict(call_kwargs or {})
    keras_call_kwargs = call_kwargs if keras_call_kwargs is None else dict(keras_call_kwargs)
    keras_layer(_tensors(inputs, False), **keras_call_kwargs)  # builds it
    if not layer.built:
        first = _leaves(_tensors(inputs, False))[0]
        layer.build(tuple(first.shape))
    k_weights = keras_layer.get_weights()
    assert [w.shape for w in layer.get_weights()] == [w.shape for w in k_weights]
    layer.set_weights(k_weights)
    for a, b in zip(layer.get_weights(), keras_layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    k_train = [w for w in keras_layer.trainable_weights]
    r_train = list(layer.trainable_weights)
    assert len(k_train) == len(r_train)
    k_out, k_grads = _run(keras_layer, inputs, keras_masks, keras_call_kwargs, k_train if grads else [], 7)
    r_out, r_grads = _run(layer, inputs, None, call_kwargs, r_train if grads else [], 7)
    np.testing.assert_allclose(r_out, k_out, rtol=rtol, atol=atol)
    if grads:
        assert len(r_grads) == len(k_grads)
        for i, (r, k) in enumerate(zip(r_grads, k_grads)):
            assert (r is None) == (k is None), f"gradient {i}: one side is unused"
            if r is not None:
                np.testing.assert_allclose(r, k, rtol=10 * rtol, atol=10 * atol, err_msg=f"gradient {i}")
    return r_out


def assert_signature_matches_keras(rnnkit_cls, keras_cls):
    """Every named Keras constructor argument is an rnnkit one, with the Keras default, in Keras's order."""
    ours = [p for p in list(inspect.signature(rnnkit_cls.__init__).parameters.values())[1:] if p.kind in NAMED]
    theirs = [p for p in list(inspect.signature(keras_cls.__init__).parameters.values())[1:] if p.kind in NAMED]
    by_name = {p.name: p for p in ours}
    missing = [p.name for p in theirs if p.name not in by_name]
    assert not missing, f"{rnnkit_cls.__name__} lacks Keras arguments {missing}"
    for p in theirs:
        assert by_name[p.name].default == p.default, (p.name, by_name[p.name].default, p.default)
    assert [p.name for p in ours][: len(theirs)] == [p.name for p in theirs]


def assert_config_keys_match_keras(rnnkit_layer, keras_layer):
    """rnnkit's config has Keras's keys (the dtype spelled as a name), and round-trips through from_config."""
    ours, theirs = rnnkit_layer.get_config(), keras_layer.get_config()
    assert set(theirs) <= set(ours) | {"activity_regularizer"}, set(theirs) - set(ours)
    clone = type(rnnkit_layer).from_config(ours)
    assert clone.get_config() == ours
    return type(rnnkit_layer).from_config(theirs)  # Keras's own config is accepted
