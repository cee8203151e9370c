"""The seed notes' Keras CNN in minigraph, line for line, on the 8x8 digits; then its inference
function with batch norm folded away.

    python examples/cnn_bn.py [--mode python|numba] [--epochs 2]

Batch norm here follows the relu (as in the seed's Keras model), so it cannot fold into the
convolution before it; the rewrite folds it into the layer after it instead (the unpadded
conv2, and through the max pooling and the flatten into the output dense layer).
"""
import argparse

import numpy as np

import minigraph as mg
from minigraph.datasets import load_digits
from minigraph.nn.sequential import BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D, Sequential


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default=None, help="python or numba (default: minigraph's default)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    data = load_digits()
    model = Sequential([
        Conv2D(32, (3, 3), activation="relu", input_shape=(1, 8, 8)),
        BatchNormalization(),
        Conv2D(32, (3, 3), activation="relu"),
        BatchNormalization(),
        MaxPooling2D(pool_size=(2, 2)),
        Flatten(),
        Dense(10, activation="softmax"),
    ])
    print(model.summary())
    model.compile(lr=0.05, optimizer="momentum", mode=args.mode)
    history = model.fit(data.x_train, data.y_train, data.x_test, data.y_test, epochs=args.epochs, batch_size=32,
                        progress=False)
    for rec in history.epochs:
        print(f"epoch {rec.epoch}: train loss {rec.train_loss:.4f}, test accuracy {rec.test_accuracy:.4f}")

    # the first batch norm keeps one running mean and variance per feature map
    bn1 = model.layers[1].inner
    print(f"\nbn1 ({model.layers[1].axes}): running mean per channel {bn1.running_mean.get_value()[:4]} ...")

    plain = model.compile_inference(fold_batch_norm=False, mode=args.mode)
    folded = model.compile_inference(mode=args.mode)
    print("\nrewrites of the folded inference function:")
    print(folded.rewrite_log.summary())
    for entry in folded.rewrite_log:
        if entry.rule.startswith("fold_batch_norm"):
            print("  ", entry)
    x = data.x_test
    diff = np.abs(plain(x) - folded(x)).max()
    print(f"\nlargest difference between the two inference functions: {diff:.2e}")
    print("\nthe folded graph (no batch-norm arithmetic left):")
    mg.debugprint(folded)


if __name__ == "__main__":
    main()
