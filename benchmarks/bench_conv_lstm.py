"""ConvLSTM2D speed: rnnkit vs Keras 3 ConvLSTM2D (torch backend), same shapes, one run.

    python benchmarks/bench_conv_lstm.py

Prints inference and training-step times and the ratio rnnkit / Keras.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import torch  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit.tools.bench import median_time, runner  # noqa: E402

SHAPES = [  # (batch, time, rows, cols, channels, filters)
    (8, 10, 16, 16, 3, 16),
    (4, 20, 32, 32, 8, 16),
]


def main():
    torch.set_num_threads(2)
    print(f"{'shape (B,T,H,W,C,F)':<28}{'mode':<7}{'rnnkit ms':>10}{'keras ms':>10}{'ratio':>8}")
    for b, t, h, w, c, f in SHAPES:
        x_shape = (b, t, h, w, c)
        ours = rnnkit.ConvLSTM2D(f, 3, padding="same", return_sequences=True)
        ours.build(x_shape)
        theirs = keras.layers.ConvLSTM2D(f, 3, padding="same", return_sequences=True)
        theirs.build(x_shape)
        ours.set_weights(theirs.get_weights())
        for mode in ("infer", "train"):
            x = torch.randn(*x_shape, requires_grad=mode == "train")
            ours.train(mode == "train")
            t_ours = median_time(runner(lambda: ours(x), list(ours.parameters()) + [x], mode), repeats=5)
            params = [v.value for v in theirs.trainable_variables] + [x]
            t_keras = median_time(runner(lambda: theirs(x, training=mode == "train"), params, mode), repeats=5)
            print(f"{str((b, t, h, w, c, f)):<28}{mode:<7}{t_ours * 1e3:>10.2f}{t_keras * 1e3:>10.2f}"
                  f"{t_ours / t_keras:>8.2f}")


if __name__ == "__main__":
    main()
