"""Centered sums: a sum over axis 0 and the fused reduction that uses the mean it gives,
joined into one pass over the data (``math.CenteredSums``).

Batch normalization needs ``mean = sum(x) / n`` before it can sum ``(x - mean) ** 2`` (and,
in its gradient, ``dy * (x - mean)`` and ``dy``): two passes over ``x``, which at large sizes
cost one read of ``x`` more than the arithmetic needs.  After reduction fusion this rewrite
looks for that shape::

    s = sum{axis=0}(x)
    mean = truediv(dimshuffle{x,0}(s), n)          # n: x's number of rows, in x's dtype
    fused_reduce{axis=0; add(sqr(sub(x, mean))); add(mul(g, sub(x, mean))); add(g)}(x, mean, g)

and replaces ``s`` and the fused reduction's outputs by one ``CenteredSums`` node, whose
kernel reads each run of rows twice while it is in cache (its sum, then the terms centered
on the run's own mean) and moves the sums to ``mean`` exactly.  Anything else in the
fused reduction's program (another use of the mean, other arithmetic) leaves it alone.
"""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import Constant, ancestors
from minigraph.rewriting.framework import apply_replacement
from minigraph.rewriting.shapes import shape_keys
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M


def fuse_centered_sums(fgraph, log) -> int:
    """Join each sum over axis 0 with the fused reduction that centers on its mean."""
    changes = 0
    for node in fgraph.toposort():
        if node not in fgraph.nodes or not isinstance(node.op, M.FusedReduce):
            continue
        found = _match(fgraph, node)
        if found is None:
            continue
        total, inputs, terms = found
        new = M.CenteredSums(tuple(terms)).make_node(*inputs)
        new.trace = total.owner.trace
        pairs = [(total, new.outputs[0])] + list(zip(node.outputs, new.outputs[1:]))
        if apply_replacement(fgraph, log, "centered_sums", pairs):
            changes += 1
    return changes


def _elemwise(v, scalar_type):
    """The node computing ``v`` when it is an Elemwise of ``scalar_type``, else None."""
    node = v.owner
    if node is not None and isinstance(node.op, E.Elemwise) and isinstance(node.op.scalar_op, scalar_type):
        return node
    return None


def _match(fgraph, node):
    """(the sum's output, the new node's inputs, its terms) for a fused reduction ``node``
    of the shape in the module docstring, else None."""
    op = node.op
    x = node.inputs[0]
    if op.axis != (0,) or x.ndim != 2 or x.dtype not in ("float32", "float64") or set(op.kinds) != {"add"}:
        return None
    comp, n_in = op.scalar_op, op.scalar_op.n_inputs
    subs = {n_in + k: args for k, (s, args) in enumerate(comp.program) if isinstance(s, E.Sub)}
    if not subs or len(set(subs.values())) != 1:
        return None
    xs, ms = next(iter(subs.values()))
    if max(xs, ms) >= n_in:
        return None
    data, mean = node.inputs[xs], node.inputs[ms]
    total = _mean_of(fgraph, mean, data)
    if total is None:
        return None
    # every output a term; every step a centering or a term's own
    inputs, terms = [data], []

    def slot_input(slot):
        if slot >= n_in or slot == ms:
            return None
        v = node.inputs[slot]
        if v is data:
            return 0
        if v.ndim != 2 or v.dtype != data.dtype or not shape_keys(fgraph).same_shape(v, data):
            return None
        if v not in inputs:
            inputs.append(v)
        return inputs.index(v)

    for out in comp.outputs:
        term = None
        if out < n_in:
            k = slot_input(out)
            term = None if k is None else ("sum", k)
        else:
            s, args = comp.program[out - n_in]
            centered = [a in subs for a in args]
            if isinstance(s, E.Sqr) and centered == [True]:
                term = ("sq", 0)
            elif isinstance(s, E.Mul) and centered == [True, True]:
                term = ("sq", 0)
            elif isinstance(s, E.Mul) and sorted(centered) == [False, True]:
                k = slot_input(args[centered.index(False)])
                term = None if k in (None, 0) else ("cross", k)
            elif isinstance(s, E.Identity) and centered == [False]:
                k = slot_input(args[0])
                term = None if k is None else ("sum", k)
        if term is None:
            return None
        terms.append(term)
    if len(comp.program) != len(subs) + sum(out >= n_in for out in set(comp.outputs)):
        return None  # some step is neither a centering nor an output
    # one node for both: nothing it reads may depend on the sum
    if any(v is total for v in ancestors(inputs[1:])):
        return None
    return total, inputs, terms


def _mean_of(fgraph, mean, data):
    """The output of ``sum{axis=0}(data)`` when ``mean`` is that sum over ``data``'s number
    of rows in ``data``'s dtype (``truediv(dimshuffle{x,0}(sum), n)``), else None."""
    div = _elemwise(mean, E.TrueDiv)
    if div is None or mean.dtype != data.dtype or mean.type.shape[0] != 1:
        return None
    num, den = div.inputs
    shuffle = num.owner
    if shuffle is None or not isinstance(shuffle.op, E.DimShuffle) or tuple(shuffle.op.new_order) != ("x", 0):
        return None
    total = shuffle.inputs[0]
    s = total.owner
    if s is None or type(s.op) is not M.Sum or s.op.axis != (0,) or s.inputs[0] is not data or total.dtype != data.dtype:
        return None
    # the count: n broadcast, a constant or x's number of rows cast to x's dtype
    while den.owner is not None and isinstance(den.owner.op, E.DimShuffle) and den.ndim > den.owner.inputs[0].ndim:
        den = den.owner.inputs[0]
    if den.dtype != data.dtype or any(d != 1 for d in den.type.shape):
        return None
    keys = shape_keys(fgraph)
    rows = keys.dim_key(data, 0)
    if isinstance(den, Constant):
        return total if np.size(den.data) == 1 and float(np.asarray(den.data).ravel()[0]) == rows else None
    cast = _elemwise(den, E.Cast)
    if cast is None or den.ndim != 0 or np.dtype(cast.inputs[0].dtype).kind not in "iu":
        return None
    return total if keys.same_length(keys.length_key(cast.inputs[0]), rows) else None
