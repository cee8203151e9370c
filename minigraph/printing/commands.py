"""The ``minigraph inspect`` and ``minigraph explain`` commands: the batch-norm layer's graphs
(forward, raw gradient, compiled training step) and the kernels that run.

``add_inspect_commands(sub)`` adds both to the command line's subparsers.
"""
from __future__ import annotations

import argparse
import os
import sys


def add_inspect_commands(sub) -> None:
    """Register ``inspect`` and ``explain`` on an ``argparse`` subparsers object."""
    p = sub.add_parser("inspect", help="print the batch-norm layer's forward graph, raw gradient graph and "
                                       "compiled training step (and write .dot/.svg pictures with --out)",
                       description="Print the graphs of one batch-norm layer: the forward graph (one "
                                   "batch_norm_train node and its inner graph), the raw gradient graph that "
                                   "autodiff derives (batch statistics marked), and the compiled training step "
                                   "(x, dy) -> (y, dx) with SGD updates of gamma and beta and the running "
                                   "statistics.")
    _common(p)
    p.add_argument("--out", metavar="DIR", help="write forward.dot, gradient.dot, train_step.dot (and .svg "
                                                "pictures when Graphviz is installed) into DIR")
    p.add_argument("--format", choices=("listing", "debugprint"), default="listing",
                   help="how to print each graph (default: listing, one node per line)")
    p.set_defaults(run=run_inspect)
    e = sub.add_parser("explain", help="print the kernel table and the generated source of the batch-norm "
                                       "training step",
                       description="Compile the batch-norm layer's training step and print its kernels (nodes "
                                   "fused, bytes read and written, flops, passes over the largest input) and "
                                   "the generated source.")
    _common(e)
    e.add_argument("--no-source", action="store_true", help="print the kernel table only")
    e.set_defaults(run=run_explain)


def _common(p) -> None:
    p.add_argument("--shape", default="100,784", help="input shape, comma-separated (default 100,784; "
                                                      "e.g. 32,16,8,8 for a convolutional layer)")
    p.add_argument("--axes", default=None, help="normalized axes: per-activation, spatial, or integers such as "
                                                "0,2,3 (default: per-activation for 2-D input, spatial otherwise)")
    p.add_argument("--mode", default=None, choices=("python", "numba"),
                   help="backend of the compiled step (default: the default mode)")
    p.add_argument("--rewrites", default="fast_run", choices=("fast_run", "fast_compile", "none"),
                   help="rewrite pipeline (default fast_run)")


def _example(args):
    from minigraph.printing.examples import bn_example

    try:
        shape = tuple(int(s) for s in str(args.shape).split(",") if s.strip())
    except ValueError:
        raise SystemExit(f"minigraph: --shape must be integers separated by commas, got {args.shape!r}") from None
    axes = args.axes or ("per-activation" if len(shape) == 2 else "spatial")
    try:
        return bn_example(shape, axes)
    except ValueError as e:
        raise SystemExit(f"minigraph: {e}") from None


def _compile(ex, args, profile=False):
    rewrites = None if args.rewrites == "none" else args.rewrites
    return ex.compile(mode=args.mode, rewrites=rewrites, profile=profile)


def _section(title: str) -> str:
    return f"\n=== {title} " + "=" * max(3, 72 - len(title)) + "\n"


def run_inspect(args, out=None) -> int:
    """``minigraph inspect``: print (and draw) the batch-norm layer's three graphs."""
    from minigraph.printing import compare, debugprint, listing, render, to_dot
    from minigraph.printing.graphs import GraphvizNotFound, dot_program

    out = out or sys.stdout
    ex = _example(args)
    f = _compile(ex, args)
    shape = "x".join(map(str, ex.shape))
    graphs = [("forward", f"forward graph: batch norm of x[{shape}] over axes {ex.axes}", ex.forward),
              ("gradient", "raw gradient graph: dx, dgamma, dbeta as autodiff derives them", ex.grads),
              ("train_step", f"compiled training step ({f.mode} mode): (x, dy) -> (y, dx) + updates", f)]
    for _, title, obj in graphs:
        out.write(_section(title))
        if args.format == "debugprint":
            out.write(debugprint(obj, file="str"))
        else:
            out.write(listing(obj, mark="statistics") + "\n")
    out.write(_section("raw gradient graph vs compiled training step"))
    out.write(compare(ex.grads, f, diff=False, titles=("raw gradient", "train step")) + "\n")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        have_dot = dot_program() is not None
        written = []
        for stem, title, obj in graphs:
            text = to_dot(obj, title=title)
            path = os.path.join(args.out, stem + ".dot")
            render(text, path)
            written.append(path)
            if have_dot:
                try:
                    written.append(render(text, os.path.join(args.out, stem + ".svg")))
                except (GraphvizNotFound, RuntimeError) as e:
                    out.write(f"could not draw {stem}.svg: {e}\n")
        out.write(_section("files"))
        out.write("\n".join(written) + "\n")
        if not have_dot:
            from minigraph.printing.graphs import INSTALL_HINT

            out.write("no .svg pictures: " + INSTALL_HINT + "\n")
    return 0


def run_explain(args, out=None) -> int:
    """``minigraph explain``: the kernel table and generated source of the training step."""
    from minigraph.printing import explain

    out = out or sys.stdout
    ex = _example(args)
    f = _compile(ex, args)
    shape = "x".join(map(str, ex.shape))
    out.write(_section(f"kernels of the batch-norm training step, x[{shape}], axes {ex.axes} ({f.mode} mode)"))
    out.write(explain(f).text() + "\n")
    if not args.no_source:
        out.write(_section("generated source" if f.mode != "python" else "source (python mode: the node listing)"))
        out.write(f.source().rstrip("\n") + "\n")
    return 0


def main(argv=None) -> int:
    """Run the two commands without the rest of the command line (for tests and docs)."""
    parser = argparse.ArgumentParser(prog="minigraph")
    add_inspect_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)
