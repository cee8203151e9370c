"""Canonicalization and algebra: small rules that make the graph simpler without changing
its values.

Exactness is the rule of thumb; where a rule can change a result, the reason it is still
taken (or not) is written next to it:

- add/mul chains are flattened only when the inner node is the *first* operand
  (``add(add(a, b), c)`` -> ``add(a, b, c)``): n-ary add and mul evaluate left to right, so
  the result is bit-identical.  ``a + (b + c)`` is left alone: reassociating floats changes
  the rounding.
- ``x * 1``, ``x / 1``, ``x ** 1`` -> ``x`` are exact; ``x + 0`` and ``x - 0`` -> ``x`` are
  exact except that ``-0.0 + 0`` is ``+0.0`` (equal values).
- ``x - x`` -> 0 only for integers: for floats ``inf - inf`` and ``nan - nan`` are NaN.
  ``x / x`` is never rewritten: ``0 / 0`` and ``inf / inf`` are NaN whatever the dtype, and a
  constant ``x`` is folded anyway.
- ``x / c`` -> ``x * (1 / c)`` only when ``c`` is a power of two: then ``1 / c`` is exact and
  both forms round the same real number once, so they agree bit for bit.  For other ``c``
  (e.g. dividing by a batch size of 100) ``x * (1 / c)`` can differ from ``x / c`` in the last
  place, and a backend divides about as fast as it multiplies in a memory-bound loop.
- ``x ** 2`` -> ``sqr(x)``, ``x ** 0.5`` -> ``sqrt(x)``, ``x ** -1`` -> ``1 / x``: the same
  correctly rounded results (``pow(-0.0, 0.5)`` is +0.0 where ``sqrt`` gives -0.0).
- ``neg(neg(x))`` -> ``x``; ``log(exp(x))`` -> ``x`` (more accurate, and finite where
  ``exp`` overflows); ``exp(log(x))`` -> ``x`` only where ``x`` is known non-negative (for
  negative ``x`` the original is NaN).
"""
from __future__ import annotations

import math

import numpy as np

from minigraph.rewriting.framework import local_rule
from minigraph.rewriting.utils import const_like, const_scalar, is_elemwise, is_int, scalar_op
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M


def _elemwise(op, *args):
    return E.Elemwise(op)(*args)


def _keep(node, v):
    """``v`` as a replacement for the node's output: same dtype, cast if needed."""
    out = node.outputs[0]
    if v.dtype != out.dtype:
        v = M.cast(v, out.dtype)
    if v.ndim != out.ndim:
        return None
    return v


def _all_ones_shape(v) -> bool:
    return all(s == 1 for s in v.type.shape)


@local_rule("local_flatten_add_mul", E.Add, E.Mul)
def local_flatten_add_mul(fgraph, node):
    """add(add(a, b), c) -> add(a, b, c) (same for mul), inner node first only."""
    cls = type(node.op.scalar_op)
    first = node.inputs[0]
    out = node.outputs[0]
    if not isinstance(scalar_op(first), cls) or len(fgraph.clients.get(first, ())) != 1:
        return None
    inner = first.owner.inputs
    if any(v.dtype != out.dtype for v in list(inner) + node.inputs[1:]):
        return None
    return [_elemwise(cls(), *inner, *node.inputs[1:])]


@local_rule("local_neutral_element", E.Add, E.Mul)
def local_neutral_element(fgraph, node):
    """x * 1 -> x, x + 0 -> x (constants that do not broadcast the result)."""
    neutral = 0 if isinstance(node.op.scalar_op, E.Add) else 1
    keep = [v for v in node.inputs if not (_all_ones_shape(v) and const_scalar(v) == neutral)]
    if len(keep) == len(node.inputs) or not keep:
        return None
    out = node.outputs[0]
    if str(np.result_type(*[v.dtype for v in keep])) != out.dtype:
        return None
    if len(keep) == 1:
        return [_keep(node, keep[0])]
    return [_elemwise(type(node.op.scalar_op)(), *keep)]


@local_rule("local_right_neutral", E.Sub, E.TrueDiv, E.Pow)
def local_right_neutral(fgraph, node):
    """x - 0, x / 1, x ** 1 -> x."""
    x, c = node.inputs
    neutral = 0 if isinstance(node.op.scalar_op, E.Sub) else 1
    if _all_ones_shape(c) and const_scalar(c) == neutral and x.dtype == node.outputs[0].dtype:
        return [x]
    return None


@local_rule("local_zero_minus", E.Sub)
def local_zero_minus(fgraph, node):
    """0 - x -> -x."""
    z, x = node.inputs
    if _all_ones_shape(z) and const_scalar(z) == 0 and x.dtype == node.outputs[0].dtype:
        return [M.neg(x)]
    return None


@local_rule("local_sub_self", E.Sub)
def local_sub_self(fgraph, node):
    """x - x -> 0 for integer x."""
    x, y = node.inputs
    if x is y and is_int(x) and node.outputs[0].dtype == x.dtype:
        return [M.zeros_like(x)]
    return None


@local_rule("local_double_neg", E.Neg)
def local_double_neg(fgraph, node):
    """-(-x) -> x."""
    x = node.inputs[0]
    if is_elemwise(x, E.Neg):
        return [x.owner.inputs[0]]
    return None


@local_rule("local_div_by_power_of_two", E.TrueDiv)
def local_div_by_power_of_two(fgraph, node):
    """x / c -> x * (1 / c) when c is a power of two (bit-identical)."""
    x, c = node.inputs
    out = node.outputs[0]
    value = const_scalar(c)
    if value is None or not _all_ones_shape(c) or np.dtype(out.dtype).kind != "f" or x.dtype != out.dtype:
        return None
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return None
    mantissa, exponent = math.frexp(abs(value))
    inv = 1.0 / value
    finfo = np.finfo(out.dtype)
    if mantissa != 0.5 or not (finfo.tiny <= abs(inv) <= finfo.max):
        return None  # 1/c is exact only for (normal) powers of two
    return [M.mul(x, const_like(inv, out.dtype, c.ndim))]


@local_rule("local_pow_special", E.Pow)
def local_pow_special(fgraph, node):
    """x ** 2 -> sqr(x), x ** 0.5 -> sqrt(x), x ** -1 -> 1 / x."""
    x, c = node.inputs
    out = node.outputs[0]
    value = const_scalar(c)
    if value is None or not _all_ones_shape(c) or x.dtype != out.dtype:
        return None
    if value == 2:
        return [M.sqr(x)]
    if value == 0.5 and np.dtype(out.dtype).kind == "f":
        return [M.sqrt(x)]
    if value == -1 and np.dtype(out.dtype).kind == "f":
        return [M.true_div(const_like(1, out.dtype, x.ndim), x)]
    return None


_NONNEGATIVE = (E.Exp, E.Sqr, E.Sqrt, E.Abs, E.Sigmoid, E.Softplus)


def known_nonnegative(v) -> bool:
    """``v`` is non-negative (or NaN) by construction."""
    op = scalar_op(v)
    if isinstance(op, _NONNEGATIVE):
        return True
    if v.owner is not None and type(v.owner.op).__name__ == "Softmax":
        return True
    c = const_scalar(v)
    return c is not None and c >= 0


@local_rule("local_exp_log", E.Exp, E.Log)
def local_exp_log(fgraph, node):
    """log(exp(x)) -> x; exp(log(x)) -> x for x known non-negative."""
    x = node.inputs[0]
    out = node.outputs[0]
    if isinstance(node.op.scalar_op, E.Log) and is_elemwise(x, E.Exp):
        inner = x.owner.inputs[0]
        return [inner] if inner.dtype == out.dtype else None
    if isinstance(node.op.scalar_op, E.Exp) and is_elemwise(x, E.Log):
        inner = x.owner.inputs[0]
        if inner.dtype == out.dtype and known_nonnegative(inner):
            return [inner]
    return None


CANONICALIZE_RULES = [local_flatten_add_mul, local_neutral_element, local_right_neutral, local_zero_minus,
                      local_sub_self, local_double_neg, local_div_by_power_of_two, local_pow_special, local_exp_log]
