"""Stabilization: rewrites that turn expressions which overflow or divide 0 by 0 for large
inputs (logits of 1e3, say) into forms that stay finite and correct.

Forward pass:
- ``local_log_softmax``: ``log(softmax(x))`` -> ``log_softmax(x)``;
- ``local_log_of_indexed_softmax``: ``log(softmax(x)[idx])`` -> ``log(softmax(x))[idx]`` (so the
  rule above applies: this is ``categorical_crossentropy``'s form);
- ``local_softmax_nll``: ``log_softmax(x)[arange(n), y]`` -> ``-softmax_cross_entropy(x, y)``;
- ``local_log_sigmoid``: ``log(sigmoid(x))`` -> ``-softplus(-x)`` and
  ``log(1 - sigmoid(x))`` -> ``-softplus(x)``;
- ``local_softplus``: ``log1p(exp(x))`` and ``log(1 + exp(x))`` -> ``softplus(x)``.

Backward pass (the gradient graph was built from the naive forward graph, so it divides by
the softmax or sigmoid, which underflows to 0):
- ``local_mul_div_cancel``: ``mul(..., a / s, ..., s)`` -> ``mul(..., a, ...)``, also when
  ``a / s`` is scattered by ``advanced_inc_subtensor`` (the gradient of ``log(p[idx])``);
- ``local_mul_sub_div_cancel``: ``(a / s - z) * s`` -> ``a - z * s`` for ``s`` a softmax, sigmoid
  or exp (the gradient of ``log(softmax(x))`` becomes ``g - softmax(x) * sum(g)``).
Cancelling ``s / s`` is exact in real arithmetic; in floats it replaces ``0 / 0`` by the limit.
"""
from __future__ import annotations

from minigraph.rewriting.framework import local_rule
from minigraph.rewriting.shapes import shape_keys
from minigraph.rewriting.utils import const_scalar, is_elemwise, scalar_op
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S
from minigraph.tensor.nnet import basic as NN
from minigraph.tensor.subtensor import ADV, SYM, AdvancedIncSubtensor, AdvancedSubtensor, Subtensor


def _is(v, cls) -> bool:
    return v.owner is not None and isinstance(v.owner.op, cls)


@local_rule("local_log_softmax", E.Log)
def local_log_softmax(fgraph, node):
    """log(softmax(x)) -> log_softmax(x)."""
    x = node.inputs[0]
    if _is(x, NN.Softmax):
        return [NN.LogSoftmax(x.owner.op.axis)(x.owner.inputs[0])]
    return None


@local_rule("local_log_of_indexed_softmax", E.Log)
def local_log_of_indexed_softmax(fgraph, node):
    """log(softmax(x)[idx]) -> log(softmax(x))[idx]."""
    x = node.inputs[0]
    if _is(x, AdvancedSubtensor) and _is(x.owner.inputs[0], NN.Softmax):
        p, *idx = x.owner.inputs
        return [AdvancedSubtensor(x.owner.op.idx)(M.log(p), *idx)]
    return None


def _row_range_length(rows):
    """``n`` when ``rows`` is ``arange(0, n, 1)``, else None."""
    while is_elemwise(rows, E.Cast):
        rows = rows.owner.inputs[0]
    if not _is(rows, S.ARange):
        return None
    start, stop, step = rows.owner.inputs
    if const_scalar(start) != 0 or const_scalar(step) != 1:
        return None
    return stop


@local_rule("local_softmax_nll", AdvancedSubtensor)
def local_softmax_nll(fgraph, node):
    """``log_softmax(x)[arange(n), y]`` -> ``-softmax_cross_entropy(x, y)``.

    With ``n`` the number of rows of ``x``, the fused op takes ``x`` whole; with ``n`` the
    number of labels, it takes the first ``n`` rows (as the indexing does).  The fused op
    wants one label per row: a single label broadcast over all rows (``y`` of length 1)
    raises a clear error there instead of broadcasting."""
    lsm, *arrays = node.inputs
    if node.op.idx != (ADV, ADV) or not _is(lsm, NN.LogSoftmax) or lsm.ndim != 2:
        return None
    x = lsm.owner.inputs[0]
    rows, y = arrays
    n = _row_range_length(rows)
    if lsm.owner.op.axis not in (-1, 1) or y.ndim != 1 or n is None:
        return None
    keys = shape_keys(fgraph)
    n_key = keys.length_key(n)
    if keys.same_length(n_key, keys.dim_key(x, 0)):
        return [M.neg(NN.SoftmaxCrossEntropy()(x, y))]
    if keys.same_length(n_key, keys.dim_key(y, 0)):
        first = Subtensor((("slice", None, SYM, None),))(x, M.cast(n, "int64"))
        return [M.neg(NN.SoftmaxCrossEntropy()(first, y))]
    return None


@local_rule("local_log_sigmoid", E.Log)
def local_log_sigmoid(fgraph, node):
    """log(sigmoid(x)) -> -softplus(-x); log(1 - sigmoid(x)) -> -softplus(x)."""
    x = node.inputs[0]
    if is_elemwise(x, E.Sigmoid):
        return [M.neg(M.softplus(M.neg(x.owner.inputs[0])))]
    if is_elemwise(x, E.Sub):
        one, s = x.owner.inputs
        if const_scalar(one) == 1 and all(d == 1 for d in one.type.shape) and is_elemwise(s, E.Sigmoid):
            return [M.neg(M.softplus(s.owner.inputs[0]))]
    return None


@local_rule("local_softplus", E.Log1p, E.Log)
def local_softplus(fgraph, node):
    """log1p(exp(x)), log(1 + exp(x)) -> softplus(x)."""
    x = node.inputs[0]
    out = node.outputs[0]
    if isinstance(node.op.scalar_op, E.Log1p):
        if is_elemwise(x, E.Exp):
            return [M.softplus(x.owner.inputs[0])]
        return None
    if is_elemwise(x, E.Add) and len(x.owner.inputs) == 2:
        a, b = x.owner.inputs
        for one, e in ((a, b), (b, a)):
            if const_scalar(one) == 1 and all(d == 1 for d in one.type.shape) and is_elemwise(e, E.Exp) \
                    and e.dtype == out.dtype:
                return [M.softplus(e.owner.inputs[0])]
    return None


def times_s(fgraph, v, s):
    """A stable expression for ``v * s`` when ``v`` divides by ``s``, else None."""
    keys = shape_keys(fgraph)
    while _is(v, S.SumToShape) and keys.same_shape(v, v.owner.inputs[0]):
        v = v.owner.inputs[0]
    op = scalar_op(v)
    if isinstance(op, E.TrueDiv) and v.owner.inputs[1] is s:
        a = v.owner.inputs[0]
        # a may be smaller (broadcast): the caller checks the shape of the whole result
        return a if a.dtype == v.dtype else None
    if isinstance(op, E.Neg):
        inner = times_s(fgraph, v.owner.inputs[0], s)
        return None if inner is None else M.neg(inner)
    if _is(v, AdvancedIncSubtensor) and not v.owner.op.set:
        zeros, vals, *arrays = v.owner.inputs
        if const_scalar(zeros) != 0 and not (_is(zeros, S.Alloc) and const_scalar(zeros.owner.inputs[0]) == 0):
            return None
        if not isinstance(scalar_op(vals), E.TrueDiv):
            return None
        a, den = vals.owner.inputs
        if not (_is(den, AdvancedSubtensor) and den.owner.inputs[0] is s and den.owner.op.idx == v.owner.op.idx
                and list(den.owner.inputs[1:]) == list(arrays) and keys.same_shape(zeros, s)):
            return None
        if a.dtype != vals.dtype:  # a broadcasts into the indexed positions as vals did
            return None
        # at each position hit by the scatter, (sum of a / s) * s is the sum of a
        return AdvancedIncSubtensor(v.owner.op.idx)(zeros, a, *arrays)
    return None


@local_rule("local_mul_div_cancel", E.Mul)
def local_mul_div_cancel(fgraph, node):
    """mul(..., a / s, ..., s) -> mul(..., a) (also through a scatter of a / s[idx])."""
    ins = node.inputs
    out = node.outputs[0]
    keys = shape_keys(fgraph)
    for j, s in enumerate(ins):
        for k, v in enumerate(ins):
            if k == j:
                continue
            w = times_s(fgraph, v, s)
            if w is None:
                continue
            rest = [x for i, x in enumerate(ins) if i not in (j, k)] + [w]
            new = rest[0] if len(rest) == 1 else M.mul(*rest)
            if new.dtype == out.dtype and new.ndim == out.ndim and keys.same_shape(new, out):
                return [new]
    return None


_UNDERFLOWING = (E.Sigmoid, E.Exp)


@local_rule("local_mul_sub_div_cancel", E.Mul)
def local_mul_sub_div_cancel(fgraph, node):
    """(a / s - z) * s -> a - z * s for s a softmax, sigmoid or exp."""
    ins = node.inputs
    out = node.outputs[0]
    keys = shape_keys(fgraph)
    for j, s in enumerate(ins):
        if not (_is(s, NN.Softmax) or isinstance(scalar_op(s), _UNDERFLOWING)):
            continue
        for k, d in enumerate(ins):
            if k == j or not is_elemwise(d, E.Sub):
                continue
            a, z = d.owner.inputs
            w = times_s(fgraph, a, s)
            if w is not None:
                new_d = M.sub(w, M.mul(z, s))
            else:
                w = times_s(fgraph, z, s)
                if w is None:
                    continue
                new_d = M.sub(M.mul(a, s), w)
            rest = [x for i, x in enumerate(ins) if i not in (j, k)] + [new_d]
            new = rest[0] if len(rest) == 1 else M.mul(*rest)
            if new.dtype == out.dtype and keys.same_shape(new, out):
                return [new]
    return None


STABILIZE_RULES = [local_log_softmax, local_log_of_indexed_softmax, local_softmax_nll, local_log_sigmoid,
                   local_softplus, local_mul_div_cancel, local_mul_sub_div_cancel]
