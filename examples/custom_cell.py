"""A Keras-style custom cell in rnnkit: ``MinimalRNNCell`` from the TensorFlow RNN docs.

The TF 2.0 ``tf.keras.layers.RNN`` reference defines this cell::

    class MinimalRNNCell(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            self.units = units
            self.state_size = units
            super(MinimalRNNCell, self).__init__(**kwargs)

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                          initializer='uniform', name='kernel')
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    initializer='uniform', name='recurrent_kernel')
            self.built = True

        def call(self, inputs, states):
            prev_output = states[0]
            h = K.dot(inputs, self.kernel)
            output = h + K.dot(prev_output, self.recurrent_kernel)
            return output, [output]

The port below changes only the imports and ``K.dot`` -> ``torch.matmul``:
``rnnkit.Layer`` takes the TF 2.0 style (attributes set before
``super().__init__``), builds on the first call and registers the weights as
``torch.nn.Parameter``. ``rnnkit.RNN`` runs it alone or stacked (a list of
cells), on the generic loop.

Run: ``python examples/custom_cell.py``
"""

import torch

import rnnkit


class MinimalRNNCell(rnnkit.Layer):
    def __init__(self, units, **kwargs):
        self.units = units
        self.state_size = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="uniform", name="recurrent_kernel"
        )
        self.built = True

    def call(self, inputs, states):
        prev_output = states[0]
        h = torch.matmul(inputs, self.kernel)
        output = h + torch.matmul(prev_output, self.recurrent_kernel)
        return output, [output]


def reference_loop(cells, x):
    """The same recurrence written out by hand: each cell feeds the next, states start at zero."""
    states = [torch.zeros(x.shape[0], c.units) for c in cells]
    for t in range(x.shape[1]):
        y = x[:, t]
        for i, c in enumerate(cells):
            y = y @ c.kernel + states[i] @ c.recurrent_kernel
            states[i] = y
    return y


def main():
    torch.manual_seed(0)
    x = torch.randn(4, 7, 5)  # (batch, timesteps, features)

    # A single cell.
    cell = MinimalRNNCell(32)
    layer = rnnkit.RNN(cell)
    y = layer(x)
    assert y.shape == (4, 32)
    torch.testing.assert_close(y, reference_loop([cell], x))
    print(f"single cell: output {tuple(y.shape)}, path: {rnnkit.explain(layer, x)}")

    # Stacked cells: a list becomes StackedRNNCells, outputs of one feed the next.
    cells = [MinimalRNNCell(32), MinimalRNNCell(64)]
    stacked = rnnkit.RNN(cells, return_sequences=True, return_state=True)
    seq, *states = stacked(x)
    assert seq.shape == (4, 7, 64)
    assert [tuple(s.shape) for s in states] == [(4, 32), (4, 64)]
    torch.testing.assert_close(seq[:, -1], reference_loop(cells, x))
    torch.testing.assert_close(states[1], seq[:, -1])
    print(f"stacked cells: sequence {tuple(seq.shape)}, states {[tuple(s.shape) for s in states]}")

    # The weights are ordinary parameters: Keras order for get_weights, autograd for training.
    assert [w.shape for w in stacked.get_weights()] == [(5, 32), (32, 32), (32, 64), (64, 64)]
    optimizer = torch.optim.Adam(stacked.parameters(), lr=1e-2)
    target = torch.ones(4, 64)
    before = torch.nn.functional.mse_loss(stacked(x)[0][:, -1], target)
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(stacked(x)[0][:, -1], target)
        loss.backward()
        optimizer.step()
    after = torch.nn.functional.mse_loss(stacked(x)[0][:, -1], target)
    assert after < before
    print(f"trained the stacked custom cells 3 steps: loss {before.item():.3f} -> {after.item():.3f}")
    print("custom_cell OK")


if __name__ == "__main__":
    main()
