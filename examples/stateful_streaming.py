"""Streaming a long sequence through a stateful LSTM, chunk by chunk.

With ``stateful=True`` the final states of a call become the initial states of
the next call (row ``b`` of one batch continues row ``b`` of the previous one),
so a long sequence fed in chunks gives exactly the outputs of feeding it whole.
``reset_states()`` zeroes the states before an unrelated stream starts. The
kept states are detached from the graph: training on chunks is truncated
backpropagation through time.

What this script shows (and asserts):

1. chunked stateful outputs == the whole sequence through a non-stateful LSTM
   with the same weights (and the same final states);
2. after ``reset_states()`` a new stream starts from zero states, while
   without it the new stream would continue the old one;
3. ``reset_states(states)`` starts a stream from given states;
4. a batch of another size is an error, not a silent broadcast.

Run: ``python examples/stateful_streaming.py``
"""

import torch

import rnnkit

BATCH, FEATURES, UNITS = 3, 4, 8
TOTAL, CHUNK = 60, 10


def stream(layer, sequence):
    """Feed ``sequence`` to ``layer`` CHUNK steps at a time; the concatenated outputs."""
    return torch.cat([layer(sequence[:, t : t + CHUNK]) for t in range(0, sequence.shape[1], CHUNK)], dim=1)


def main():
    torch.manual_seed(0)
    first, second = torch.randn(BATCH, TOTAL, FEATURES), torch.randn(BATCH, TOTAL, FEATURES)

    # batch_input_shape fixes the batch size a stateful layer keeps states for.
    streaming = rnnkit.LSTM(UNITS, stateful=True, return_sequences=True, batch_input_shape=(BATCH, CHUNK, FEATURES))
    whole = rnnkit.LSTM(UNITS, return_sequences=True, return_state=True, input_shape=(TOTAL, FEATURES))
    whole.set_weights(streaming.get_weights())

    with torch.no_grad():
        # 1. Chunks through the stateful layer == the whole sequence at once.
        chunked = stream(streaming, first)
        full, h, c = whole(first)
        torch.testing.assert_close(chunked, full)
        torch.testing.assert_close(streaming.states[0], h)
        torch.testing.assert_close(streaming.states[1], c)
        print(f"{TOTAL // CHUNK} chunks of {CHUNK} steps == {TOTAL} steps at once (outputs and final h, c)")

        # 2. A new, unrelated stream: reset first.
        carried_on = stream(streaming, second)  # (wrong: starts from the first stream's states)
        streaming.reset_states()
        assert all(bool((s == 0).all()) for s in streaming.states)
        fresh = stream(streaming, second)
        torch.testing.assert_close(fresh, whole(second)[0])
        assert not torch.allclose(carried_on, fresh)
        print("reset_states() between streams: the second stream matches a fresh run (without it, it does not)")

        # 3. Start a stream from given states (Keras order: h, c).
        streaming.reset_states([h.numpy(), c.numpy()])
        continued = stream(streaming, second)
        torch.testing.assert_close(continued, carried_on)
        print("reset_states([h, c]) resumes a stream from saved states")

        # 4. The layer holds states for BATCH rows; another batch size is refused.
        try:
            streaming(torch.randn(BATCH + 1, CHUNK, FEATURES))
        except ValueError as err:
            print(f"another batch size is refused: {str(err).split(';')[0]}")
        else:
            raise AssertionError("a batch of another size was accepted")
    print("stateful_streaming OK")


if __name__ == "__main__":
    main()
