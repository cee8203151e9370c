"""The ``minigraph`` command line: ``minigraph train`` (the seed notes' experiment) and
``minigraph demo``.

Each subcommand is a function that adds its parser to the subparsers and sets ``run``;
``SUBCOMMANDS`` lists them in the order ``--help`` shows them.  To add one, write
``def add_x(sub)`` and append it to ``SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time


def _dropout(text: str) -> tuple:
    """"0.1,0.5" -> (0.1, 0.5) (first hidden layer, the others); "0.2" -> (0.2,); "0" -> ()."""
    try:
        rates = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate or 'first,rest' such as 0.1,0.5, got {text!r}") from None
    if any(not 0 <= r < 1 for r in rates) or len(rates) > 2:
        raise argparse.ArgumentTypeError(f"rates lie in [0, 1); give one rate or 'first,rest', got {text!r}")
    return rates if any(rates) else ()


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


#: default --epochs per dataset: digits has 14 steps per epoch, MNIST-sized data 600
DEFAULT_EPOCHS = {"digits": 20, "mnist": 5, "fashion-mnist": 5}

#: what --quick changes (flags given explicitly still win)
QUICK = {"layers": 3, "units": 64, "epochs": 5, "max_train": 1000, "max_test": 500}


def add_train(sub) -> None:
    """``minigraph train``: the MLP with and without batch normalization, history and plots."""
    from minigraph.datasets import DATASETS
    from minigraph.nn.experiment import ExperimentConfig

    d = ExperimentConfig()
    p = sub.add_parser(
        "train", help="train the seed notes' MLP with and without batch norm; write history and plots",
        description="Train the seed notes' MLP (input -> (dense -> batch norm -> activation -> dropout) x layers "
                    "-> softmax) with and without batch normalization, print a table, and write history.json, "
                    "config.json and PNG plots under --out.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--compare", dest="variants", action="store_const", const=("bn", "plain"),
                       help="train both variants (the default)")
    which.add_argument("--bn", dest="variants", action="store_const", const=("bn",), help="only with batch norm")
    which.add_argument("--no-bn", dest="variants", action="store_const", const=("plain",),
                       help="only without batch norm")
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset, help="default: %(default)s (ships with "
                   "scikit-learn); mnist needs --data-dir; fashion-mnist also looks where Debian's "
                   "dataset-fashion-mnist package installs it")
    p.add_argument("--data-dir", default=None, help="folder with the four MNIST-format IDX files (.gz or not)")
    p.add_argument("--layers", type=_positive(int), default=None, help=f"hidden layers (default {d.layers})")
    p.add_argument("--units", type=_positive(int), default=None, help=f"units per hidden layer (default {d.units})")
    p.add_argument("--activation", choices=("tanh", "relu", "sigmoid"), default=d.activation,
                   help="default: %(default)s")
    p.add_argument("--lr", type=_positive(float), default=d.lr, help="learning rate (default %(default)s)")
    p.add_argument("--optimizer", choices=("sgd", "momentum"), default=d.optimizer, help="default: %(default)s")
    p.add_argument("--batch-size", type=_positive(int), default=d.batch_size, help="default: %(default)s")
    p.add_argument("--epochs", type=_positive(int), default=None,
                   help="default: " + ", ".join(f"{v} on {k}" for k, v in DEFAULT_EPOCHS.items()))
    p.add_argument("--dropout", type=_dropout, default=d.dropout,
                   help="a rate for every hidden layer, or 'first,rest' (default 0.1,0.5; 0 for none)")
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    p.add_argument("--mode", choices=("python", "numba", "debug"), default=None,
                   help="backend (default: minigraph's default mode)")
    p.add_argument("--quick", action="store_true",
                   help="a small fast run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--out", default=None, help="output folder (default runs/<timestamp>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (also off when not a terminal)")
    p.add_argument("--threads", type=_positive(int), default=1,
                   help="threads for BLAS and numba's parallel loops (default 1: a batch's matrices are small, and "
                        "idle BLAS threads spin between products, taking the cores the other kernels need: on 2 "
                        "cores a step was slower with 2 threads than with 1)")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the interrupted run in DIR (its config.json and checkpoints; other flags "
                        "are ignored); a checkpoint is written after every epoch and on Ctrl-C")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="mlp (default) or cnn: the seed's Keras CNN on the images, then its inference with batch norm "
                        "folded (flags left at their defaults use lr 0.05, momentum, batch 32, 2 epochs)")
    p.set_defaults(run=run_train)


def train_config(args):
    """The ExperimentConfig that the parsed ``train`` arguments describe."""
    from minigraph.nn.experiment import ExperimentConfig

    quick = QUICK if args.quick else {}
    d = ExperimentConfig()

    defaults = {"epochs": DEFAULT_EPOCHS.get(args.dataset, d.epochs)}

    def pick(name):
        value = getattr(args, name, None)
        return value if value is not None else quick.get(name, defaults.get(name, getattr(d, name)))

    return ExperimentConfig(
        dataset=args.dataset, data_dir=args.data_dir, variants=args.variants or d.variants, layers=pick("layers"),
        units=pick("units"), activation=args.activation, lr=args.lr, optimizer=args.optimizer,
        batch_size=args.batch_size, epochs=pick("epochs"), dropout=tuple(args.dropout), seed=args.seed, mode=args.mode,
        max_train=quick.get("max_train"), max_test=quick.get("max_test"))


@contextlib.contextmanager
def limit_threads(n: int | None, mode: str | None):
    """Run the block with at most ``n`` BLAS threads (and numba threads in numba/debug mode)."""
    if not n:
        yield
        return
    from minigraph.compile.mode import DEFAULT_MODE

    numba_threads = None
    if (mode or DEFAULT_MODE) in ("numba", "debug"):
        import numba

        numba_threads = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover
        threadpool_limits = None
    try:
        if threadpool_limits is None:
            yield
        else:
            with threadpool_limits(limits=n, user_api="blas"):
                yield
    finally:
        if numba_threads is not None:
            numba.set_num_threads(numba_threads)


def run_train(args) -> int:
    """Load the data, train the variants, print the table, write the files."""
    if getattr(args, "model", "mlp") == "cnn":
        from minigraph.nn.cnn_experiment import run_cnn

        return run_cnn(args)
    from minigraph.datasets import DatasetError, load
    from minigraph.nn.experiment import format_table, read_config, run_experiment, write_config, write_results

    resume = getattr(args, "resume", None)
    if resume:
        try:
            config = read_config(resume)
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"minigraph train: cannot resume from {resume}: no readable config.json ({e})", file=sys.stderr)
            return 2
    else:
        config = train_config(args)
    try:
        dataset = load(config.dataset, config.data_dir, seed=config.seed)
    except DatasetError as e:
        print(f"minigraph train: cannot load the {config.dataset} dataset. {e}", file=sys.stderr)
        return 2
    if config.batch_size > min(len(dataset.x_train), config.max_train or len(dataset.x_train)):
        print(f"minigraph train: --batch-size {config.batch_size} exceeds the training examples", file=sys.stderr)
        return 2
    out = resume or args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    if not resume:
        write_config(out, config)
    print(f"{dataset!r}\n{config.layers} hidden layers x {config.units} {config.activation}, lr {config.lr}, "
          f"batch {config.batch_size}, dropout {list(config.dropout)}, {config.epochs} epochs, seed {config.seed}")
    with limit_threads(getattr(args, "threads", None), config.mode):
        results = run_experiment(config, dataset, progress=False if args.no_progress else None, checkpoint_dir=out,
                                 resume=bool(resume))
    paths = write_results(out, config, dataset, results)
    print()
    print(format_table(results))
    print(f"\nwrote {', '.join(sorted(os.path.basename(p) for p in paths.values()))} under {out}")
    if any(r.history.interrupted for r in results):
        print(f"interrupted: continue with  minigraph train --resume {out}", file=sys.stderr)
        return 130
    return 0


def add_demo(sub) -> None:
    """``minigraph demo``: a small softmax classifier, built, differentiated and compiled."""
    demo = sub.add_parser("demo", help="build, differentiate and compile a small softmax classifier")
    demo.set_defaults(run=_demo)


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


def add_inspect(sub) -> None:
    """``minigraph inspect`` and ``minigraph explain`` (defined in minigraph.printing.commands)."""
    from minigraph.printing.commands import add_inspect_commands

    add_inspect_commands(sub)


#: the subcommands, in --help order
SUBCOMMANDS = [add_train, add_demo, add_inspect]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of ``SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(prog="minigraph", description="A Theano-style symbolic graph compiler in miniature.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``minigraph`` console script."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
