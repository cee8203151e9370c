"""Sums: factors that do not vary along the summed axes move outside the sum.

``sum(c * a, axes) -> c * sum(a, axes)`` when ``c`` has static length 1 on every summed
axis (a per-feature scale such as batch norm's gamma or inverse std); likewise
``sum(-a) -> -sum(a)`` and ``sum(a / c) -> sum(a) / c``; ``sum(a + b) -> sum(a) + sum(b)``
(or ``-``) when that lets a term lose a factor; and ``sum(a - c) -> sum(a) - n * c`` for ``n``
elements summed.

Why: the gradient of batch norm sums ``dy * gamma * invstd``, ``dy * xhat * gamma``,
``dy * xhat * invstd`` and ``(x - mean) * dvar``; with the per-feature factors outside, what
is left inside is a handful of shared sums (``sum(dy)``, ``sum(dy * (x - mean))``, and
``sum(x - mean) = sum(x) - n * mean``, whose ``sum(x)`` the mean has already made) that merge
into one pass over ``x`` and ``dy``, instead of one pass per distinct product.  The result
differs from the original in rounding only: a reduction's order of additions is the
backend's choice anyway, and moving a factor out replaces one rounded product per element
by one per feature.  Where a factor is NaN the two forms can differ: over an empty axis
``sum(c * a)`` is 0 while ``c * sum(a)`` is NaN (batch norm's inverse std of an empty batch).

Splitting an addition is only done where every term either has the summed input's lengths
on the summed axes (ShapeKeys proves it) or has static length 1 on all of them (it is then
counted once per element summed): a term that broadcast along a summed axis at run time
would otherwise be summed once instead of once per element.

A sum of the gradient's run-time ``sum_to_shape`` sums first (``local_sum_of_sum_to_shape``):
the summed axes are summed whole either way, and the inner sum can then lose its factors and
meet the other sums of the same input.
"""
from __future__ import annotations

import numpy as np

from minigraph.rewriting.framework import local_rule
from minigraph.rewriting.shapes import shape_keys
from minigraph.rewriting.utils import is_float, scalar_op
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S
from minigraph.tensor.basic import constant


def _constant_along(v, axes) -> bool:
    return all(v.type.shape[a] == 1 for a in axes)


def _drop(v, axes):
    """``v`` (static length 1 on ``axes``) without those axes."""
    return E.DimShuffle(tuple(d for d in range(v.ndim) if d not in axes), v.ndim)(v)


def _kept_sum(t, axes):
    """sum(t, axes) with the summed axes kept as length 1: the arithmetic around the sums
    stays in the shape of the factors, so it fuses into one small elementwise node."""
    kept = iter(range(t.ndim - len(axes)))
    return E.DimShuffle(tuple("x" if d in axes else next(kept) for d in range(t.ndim)), t.ndim - len(axes))(
        M.Sum(axes)(t))


def _pulled(fgraph, v, axes, dtype):
    """An expression for ``sum(v, axes)`` (summed axes kept, length 1) with the factors
    constant along ``axes`` outside the sum, or None when there is nothing to pull out."""
    op = scalar_op(v)
    if op is None or v.dtype != dtype:
        return None
    ins = v.owner.inputs
    if any(t.ndim != v.ndim or t.dtype != dtype for t in ins):
        return None

    def total(t):
        inner = _pulled(fgraph, t, axes, dtype)
        return inner if inner is not None else _kept_sum(t, axes)

    if isinstance(op, E.Neg):
        inner = _pulled(fgraph, ins[0], axes, dtype)
        return None if inner is None else M.neg(inner)
    if isinstance(op, E.Mul):
        outside = [t for t in ins if _constant_along(t, axes)]
        inside = [t for t in ins if not _constant_along(t, axes)]
        if not outside or not inside:
            return None
        rest = inside[0] if len(inside) == 1 else M.mul(*inside)
        return M.mul(*outside, total(rest))
    if isinstance(op, E.TrueDiv):
        a, c = ins
        if not _constant_along(c, axes) or _constant_along(a, axes):
            return None
        return M.true_div(total(a), c)
    if isinstance(op, (E.Add, E.Sub)):
        keys = shape_keys(fgraph)
        varying = [t for t in ins if not _constant_along(t, axes)]
        if not all(keys.same_length(keys.dim_key(t, d), keys.dim_key(v, d)) for t in varying for d in axes):
            return None
        parts = [_pulled(fgraph, t, axes, dtype) if t in varying else _times_count(t, v, axes, dtype) for t in ins]
        if all(p is None for p in parts):
            return None
        sums = [p if p is not None else _kept_sum(t, axes) for p, t in zip(parts, ins)]
        return M.add(*sums) if isinstance(op, E.Add) else M.sub(*sums)
    return None


def _times_count(c, v, axes, dtype):
    """sum(c, axes) for ``c`` constant along ``axes`` and broadcast to ``v``: ``c`` times the
    number of elements summed (``v``'s lengths on ``axes``)."""
    count = S.shape_i(v, axes[0])
    for d in axes[1:]:
        count = M.mul(count, S.shape_i(v, d))
    return M.mul(c, M.cast(count, dtype))


@local_rule("local_sum_factor_out", M.Sum)
def local_sum_factor_out(fgraph, node):
    """sum(c * a) -> c * sum(a) for ``c`` constant along the summed axes (see the module)."""
    x, out = node.inputs[0], node.outputs[0]
    if out.dtype != x.dtype or not is_float(x):
        return None
    new = _pulled(fgraph, x, node.op.axis, x.dtype)
    return None if new is None else [_drop(new, node.op.axis)]


@local_rule("local_sum_of_sum_to_shape", M.Sum)
def local_sum_of_sum_to_shape(fgraph, node):
    """sum(sum_to_shape(y, *lengths), axes) -> sum_to_shape(sum(y, axes), ...) without ``axes``:
    the summed axes are summed whole either way, and the inner sum can then meet the other
    reductions of ``y`` (and lose its factors)."""
    inner = node.inputs[0]
    if inner.owner is None or not isinstance(inner.owner.op, S.SumToShape):
        return None
    y, *lengths = inner.owner.inputs
    axes = node.op.axis
    if not axes or y.dtype != node.outputs[0].dtype:
        return None
    one = constant(np.asarray(1, dtype="int64"))
    kept = _kept_sum(y, axes)
    new = S.SumToShape()(kept, *[one if d in axes else s for d, s in enumerate(lengths)])
    return [_drop(new, axes)]


SUM_RULES = [local_sum_factor_out, local_sum_of_sum_to_shape]
