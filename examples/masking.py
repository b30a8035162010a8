"""Masking padded token sequences, Keras ``Embedding(mask_zero=True)``-style, in rnnkit.

Keras builds the mask inside ``Embedding(mask_zero=True)``; in PyTorch it is one
line: ``mask = tokens != 0`` (True = a real token), passed as ``mask=``. With
``torch.nn.Embedding(padding_idx=0)`` the padding id also gets a zero vector
that receives no gradient.

What this script shows (and asserts):

1. the padded batch gives, row by row, the result of running each sequence
   alone without its padding: padded steps change nothing, whatever their
   values are and however many there are;
2. with ``return_sequences=True`` a padded step repeats the last valid output
   (Keras's rule), or is zero with ``zero_output_for_mask=True``;
3. ``rnnkit.explain`` reports the fused kernel for right-padded masks, and the
   generic loop (``use_fused=False``) gives the same numbers;
4. left padding is a mask the unmasked kernel cannot take: the same fused path
   (a mask never decides the path) runs it on rnnkit's native kernel (or a
   step loop where that cannot be built), same semantics.

Run: ``python examples/masking.py``
"""

import torch

import rnnkit

VOCAB, EMBED, UNITS = 20, 8, 16


def main():
    torch.manual_seed(0)
    tokens = torch.tensor(
        [
            [5, 3, 8, 2, 7, 0, 0, 0],
            [4, 9, 1, 0, 0, 0, 0, 0],
            [6, 2, 2, 3, 1, 8, 9, 4],
            [7, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    mask = tokens != 0  # (batch, time), True = use the step
    lengths = mask.sum(1)

    embed = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0)
    lstm = rnnkit.LSTM(UNITS, input_shape=(None, EMBED))  # last output: (batch, UNITS)
    x = embed(tokens)
    y = lstm(x, mask=mask)

    # 1. Each row equals that sequence run alone, without padding and without a mask.
    for b in range(len(tokens)):
        alone = lstm(embed(tokens[b : b + 1, : lengths[b]]))
        torch.testing.assert_close(y[b : b + 1], alone)
    # ... whatever the padded steps hold, and however many there are.
    noisy = torch.where(mask[..., None], x, torch.randn_like(x) * 10)
    torch.testing.assert_close(lstm(noisy, mask=mask), y)
    longer = torch.nn.functional.pad(tokens, (0, 5))  # five more padding steps
    torch.testing.assert_close(lstm(embed(longer), mask=longer != 0), y)
    # Without the mask the padding is read as data and the result changes.
    assert not torch.allclose(lstm(x), y)
    print("padded steps change nothing: each row equals its unpadded sequence run alone")

    # 2. The sequence output at padded steps.
    seq_layer = rnnkit.LSTM(UNITS, return_sequences=True, input_shape=(None, EMBED))
    seq_zero = rnnkit.LSTM(UNITS, return_sequences=True, zero_output_for_mask=True, input_shape=(None, EMBED))
    seq_zero.set_weights(seq_layer.get_weights())
    seq, seq0 = seq_layer(x, mask=mask), seq_zero(x, mask=mask)
    last_valid = seq[torch.arange(len(tokens)), lengths - 1]
    for b in range(len(tokens)):
        pad = seq[b, lengths[b] :]
        torch.testing.assert_close(pad, last_valid[b].expand_as(pad))
        assert bool((seq0[b, lengths[b] :] == 0).all())
    torch.testing.assert_close(seq0 * mask[..., None], seq * mask[..., None])
    print("return_sequences: padded steps repeat the last valid output (zeros with zero_output_for_mask)")

    # 3. Right-padded masks run on the fused kernel, with the generic loop's numbers.
    plan = rnnkit.explain(lstm, x, mask)
    assert plan.path == "fused", plan
    generic = rnnkit.LSTM(UNITS, use_fused=False, input_shape=(None, EMBED))
    generic.set_weights(lstm.get_weights())
    assert rnnkit.explain(generic, x, mask).path == "generic"
    torch.testing.assert_close(generic(x, mask=mask), y)
    print(f"right-padded mask -> {plan.path} ({plan}); same result as the generic loop")

    # 4. Left padding: the padding comes first; the unmasked kernel cannot take it, the native kernel
    #    (or, without it, the fused path's step loop) does (the path itself never depends on mask values).
    steps = torch.arange(tokens.shape[1])
    left_idx = (steps[None, :] - (tokens.shape[1] - lengths)[:, None]) % tokens.shape[1]
    left = tokens.gather(1, left_idx)  # same sequences, padding moved to the front
    left_mask = left != 0
    assert bool((left_mask.sum(1) == lengths).all()) and not bool(left_mask[:, 0].all())
    left_plan = rnnkit.explain(lstm, embed(left), left_mask)
    assert left_plan.path == "fused" and ("other masks on" in left_plan.detail or "any mask" in left_plan.detail)
    torch.testing.assert_close(lstm(embed(left), mask=left_mask), y)
    print(f"left-padded mask -> {left_plan.path} ({left_plan}); same result")
    print("masking OK")


if __name__ == "__main__":
    main()
