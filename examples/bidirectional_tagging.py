"""A per-step tagger: ``Embedding -> Bidirectional(LSTM(return_sequences=True)) -> Linear``.

The synthetic task needs the right-hand context, which only the backward
direction sees: the tag of token ``t`` says whether the *next* token is odd
(0) or even (1), or that ``t`` is the last token of its sequence (2).
Sequences have random lengths and are right-padded with id 0; the mask
``tokens != 0`` keeps the padding out of both directions, and the loss is
averaged over the real tokens only.

What this script shows (and asserts):

1. the masked, bidirectional model learns the task in 30 steps
   (a forward-only LSTM could not: it has not seen the next token yet);
2. padding does not leak into the valid steps: more padding leaves their
   outputs unchanged, and the backward direction starts at each sequence's
   own last token (the right-padded mask runs on the fused kernels).

Run: ``python examples/bidirectional_tagging.py``
"""

import torch

import rnnkit

VOCAB, MAX_LEN, EMBED, UNITS, TAGS = 10, 12, 16, 32, 3


def make_batch(n, generator):
    """Right-padded tokens (ids 1..VOCAB-1, 0 = padding), their mask and their tags."""
    lengths = torch.randint(3, MAX_LEN + 1, (n,), generator=generator)
    mask = torch.arange(MAX_LEN)[None, :] < lengths[:, None]
    tokens = torch.randint(1, VOCAB, (n, MAX_LEN), generator=generator) * mask
    nxt = torch.nn.functional.pad(tokens[:, 1:], (0, 1))  # the next token, 0 past the end
    tags = torch.where(nxt == 0, 2, (nxt % 2 == 0).long())
    return tokens, mask, tags


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0)
        # input_shape on the wrapper builds both directions now, before the optimizer is made.
        self.bilstm = rnnkit.Bidirectional(
            rnnkit.LSTM(UNITS, return_sequences=True), merge_mode="concat", input_shape=(MAX_LEN, EMBED)
        )
        self.head = torch.nn.Linear(2 * UNITS, TAGS)

    def forward(self, tokens):
        mask = tokens != 0
        return self.head(self.bilstm(self.embed(tokens), mask=mask))  # (batch, time, TAGS)


def masked_loss_and_accuracy(logits, tags, mask):
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tags, reduction="none")
    loss = (loss * mask).sum() / mask.sum()
    acc = ((logits.argmax(-1) == tags) & mask).sum() / mask.sum()
    return loss, acc.item()


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    test_tokens, test_mask, test_tags = make_batch(256, g)

    model.eval()
    with torch.no_grad():
        loss0, acc0 = masked_loss_and_accuracy(model(test_tokens), test_tags, test_mask)
    model.train()
    for _ in range(30):
        tokens, mask, tags = make_batch(64, g)
        loss, _ = masked_loss_and_accuracy(model(tokens), tags, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        loss1, acc1 = masked_loss_and_accuracy(model(test_tokens), test_tags, test_mask)
    print(f"held-out masked loss {loss0.item():.3f} -> {loss1.item():.3f}, tag accuracy {acc0:.2f} -> {acc1:.2f}")
    assert loss1 < 0.5 * loss0 and acc1 > 0.9, (loss0, loss1, acc1)

    with torch.no_grad():
        x = model.embed(test_tokens)
        plan = rnnkit.explain(model.bilstm, x, test_mask)
        assert plan.path == "fused", plan
        # More padding on the right: the valid steps' outputs do not move.
        longer = torch.nn.functional.pad(test_tokens, (0, 4))
        out, out_longer = model(test_tokens), model(longer)
        torch.testing.assert_close(out_longer[:, :MAX_LEN][test_mask], out[test_mask])
        # The backward half at a sequence's last token has seen that token only:
        # the same as running the backward layer on that one token.
        h = model.bilstm(x, mask=test_mask)[..., UNITS:]
        lengths = test_mask.sum(1)
        last = x[torch.arange(len(x)), lengths - 1][:, None]  # (batch, 1, EMBED)
        torch.testing.assert_close(h[torch.arange(len(x)), lengths - 1], model.bilstm.backward_layer(last)[:, 0])
    print(f"padding leaves the valid steps unchanged ({plan.path} path for the right-padded mask)")
    print("bidirectional_tagging OK")


if __name__ == "__main__":
    main()
