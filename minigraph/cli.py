"""The ``minigraph`` command line."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minigraph", description="A Theano-style symbolic graph compiler in miniature.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build, differentiate and compile a small softmax classifier")
    demo.set_defaults(run=_demo)
    return parser


def _demo(args) -> int:
    import numpy as np

    import minigraph as mg
    import minigraph.tensor as T

    rng = np.random.default_rng(0)
    x, y = T.matrix("x"), T.ivector("y")
    W = mg.shared(np.zeros((4, 3), dtype="float32"), name="W")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W)), y))
    train = mg.function([x, y], cost, updates=[(W, W - 0.5 * mg.grad(cost, W))])
    xs = rng.standard_normal((64, 4)).astype("float32")
    ys = np.argmax(xs[:, :3], axis=1).astype("int32")
    for step in range(20):
        loss = train(xs, ys)
        if step % 5 == 0 or step == 19:
            print(f"step {step:2d}  loss {float(loss):.4f}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
