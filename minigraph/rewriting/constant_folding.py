"""Constant folding: a node whose inputs are all constants is computed now, with the op's
own ``perform``, and replaced by constants.

Ops that draw random numbers or whose results could be large (an ``alloc`` of a big
shape) are left alone: folding them would freeze randomness or bloat the graph.
"""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import Constant
from minigraph.rewriting.framework import local_rule
from minigraph.tensor.variable import TensorConstant

#: results with more elements than this stay computed at run time
MAX_FOLDED_SIZE = 1024


@local_rule("constant_folding")
def constant_folding(fgraph, node):
    """A node of constants becomes the constants its perform computes."""
    if not node.inputs or not all(isinstance(i, Constant) for i in node.inputs):
        return None
    if getattr(node.op, "inplace", ()) or "Random" in type(node.op).__name__:
        return None
    if not all(hasattr(o.type, "shape") for o in node.outputs):
        return None
    try:
        with np.errstate(all="ignore"):
            values = node.op.perform(node, [i.data for i in node.inputs])
    except Exception:  # an error at run time must stay an error at run time
        return None
    out = []
    for var, value in zip(node.outputs, values):
        value = np.array(value, dtype=var.dtype, copy=True)
        if value.size > MAX_FOLDED_SIZE or not var.type.shape_matches(value.shape):
            return None
        value.setflags(write=False)
        out.append(TensorConstant(type(var.type)(var.dtype, value.shape), value))
    return out
