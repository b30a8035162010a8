"""``RNN``'s plain call (one tensor, nothing else) takes a shorter route: the same numbers as the general one."""

import pytest
import torch

import rnnkit


def _pair(make):
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(3, 5, 4)
    layer(x)
    return layer, x


@pytest.mark.parametrize("make", [
    lambda: rnnkit.LSTM(6, return_sequences=True, return_state=True),
    lambda: rnnkit.GRU(6, go_backwards=True, return_state=True),
    lambda: rnnkit.SimpleRNN(6, activation="relu", return_sequences=True),
    lambda: rnnkit.LSTM(6, dropout=0.3, return_sequences=True),  # torch generator, reseeded below
])
@pytest.mark.parametrize("training", [False, True])
def test_plain_call_equals_the_general_route(make, training):
    layer, x = _pair(make)
    torch.manual_seed(1)
    plain = layer(x, training=training)
    torch.manual_seed(1)
    general = layer.prepare(x, training=training).run()
    for a, b in zip(plain if isinstance(plain, list) else [plain], general if isinstance(general, list) else [general]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_plain_call_of_a_stateful_layer_carries_its_states_like_the_general_route():
    layer, x = _pair(lambda: rnnkit.GRU(6, stateful=True, return_sequences=True))
    twin = rnnkit.GRU(6, stateful=True, return_sequences=True)
    twin(x)
    twin.load_state_dict(layer.state_dict())
    for step in range(3):
        a = layer(x[:, step:step + 1])
        b = twin.prepare(x[:, step:step + 1]).run()
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(layer.states[0], twin.states[0], rtol=0, atol=0)


def test_plain_call_leaves_wrong_inputs_to_the_general_errors():
    layer, x = _pair(lambda: rnnkit.LSTM(6))
    with pytest.raises(ValueError, match="expected features of shape"):
        layer(torch.randn(3, 5, 7))
    with pytest.raises(ValueError, match="rank 3"):
        layer(torch.randn(3, 5))
    assert layer(x.double()).dtype == torch.float32  # cast as the general route casts


def test_states_set_by_reset_states_hold_the_layer_to_their_batch_size():
    layer = rnnkit.GRU(3, stateful=True)
    layer(torch.randn(2, 4, 5))
    layer.reset_states()
    layer.reset_states(states=[torch.ones(2, 3)])  # set values: the layer keeps them, for batch 2
    with pytest.raises(ValueError, match="batch size 2"):
        layer(torch.randn(4, 4, 5))
