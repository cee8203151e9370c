"""Rewrite pipeline on the seed MLP's training step: node counts and compile-time cost.

The seed configuration: 10 hidden layers of 784 units, each Dense -> batch norm -> tanh
(dropout optional), softmax NLL, SGD updates of every parameter and the running averages.
Prints, per pipeline, the node count, the fused nodes and the time the rewrites take
(median of a few runs), and the rewrite log's summary for fast_run.

Run by hand:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/rewriting.py [--dropout]
"""
from __future__ import annotations

import argparse
import statistics
import time

import minigraph.tensor as T
from minigraph.graph.basic import graph_inputs
from minigraph.graph.fg import FunctionGraph
from minigraph.nn.model import MLP
from minigraph.nn.optimizers import sgd
from minigraph.rewriting import rewrite_graph


def training_step(n_layers: int, units: int, dropout: float):
    """(inputs, outputs, updated shared variables) of the training step: outputs are the cost
    and every update value."""
    model = MLP(n_layers=n_layers, units=units, dropout=dropout, seed=0)
    x, y = T.matrix("x"), T.ivector("y")
    cost = T.mean(model.nll(x, y))
    updates = sgd(cost, model.params, lr=0.01) + model.updates
    return [x, y], [cost] + [u for _, u in updates], [v for v, _ in updates]


def fused_count(fgraph) -> int:
    """Nodes made by fusion: Elemwise(Composite) and FusedReduce."""
    n = 0
    for node in fgraph.toposort():
        name = type(node.op).__name__
        if name == "FusedReduce" or (name == "Elemwise" and type(node.op.scalar_op).__name__ == "Composite"):
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--units", type=int, default=784)
    parser.add_argument("--dropout", action="store_true", help="the seed's dropout (0.1, then 0.5)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    inputs, outputs, update_map = training_step(args.layers, args.units, (0.1, 0.5) if args.dropout else 0.0)
    shared = [v for v in graph_inputs(outputs) if hasattr(v, "get_value")]
    print(f"seed MLP training step: {args.layers} layers x {args.units}, batch norm, softmax NLL, SGD, "
          f"running averages, dropout {'on' if args.dropout else 'off'}")
    print(f"{'pipeline':<26}{'nodes':>8}{'fused':>8}{'ratio':>8}{'rewrite cpu ms (median)':>26}")
    raw = None
    for pipeline in (None, "fast_compile", "fast_run"):
        times, log, fg = [], None, None
        for _ in range(args.repeat):
            fg = FunctionGraph(inputs + shared, outputs)
            fg.update_map = {k + 1: len(inputs) + shared.index(v) for k, v in enumerate(update_map)}
            start = time.process_time()
            log = rewrite_graph(fg, pipeline)
            times.append(time.process_time() - start)
        n = len(fg.toposort())
        raw = raw or n
        print(f"{str(pipeline):<26}{n:>8}{fused_count(fg):>8}{n / raw:>8.2f}{statistics.median(times) * 1000:>26.1f}")
    fg = FunctionGraph(inputs + shared, outputs)
    from minigraph.rewriting import RewriteLog
    from minigraph.rewriting.inline import inline_composites

    inline_composites(fg, RewriteLog())
    print(f"{'None, batch norm inlined':<26}{len(fg.toposort()):>8}")
    print()
    print(log.summary())
    print("time per pass (last fast_run, wall):")
    for name, seconds, changes in log.pass_seconds:
        print(f"  {name:<22}{seconds * 1000:>9.1f} ms  {changes:>5} changes")


if __name__ == "__main__":
    main()
