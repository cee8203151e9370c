"""Folding inference-mode batch normalization into the linear layer next to it.

At inference batch normalization is a per-channel affine map,
``y = (x - mean) * gamma * invstd + beta = x * s + t`` with ``s = gamma * invstd`` and
``t = beta - mean * s`` (``invstd = 1 / sqrt(var + eps)``), which a linear layer can absorb:

- ``fold_batch_norm`` (into the layer before): ``x = h @ W + b`` or ``conv2d(h, W) + b``,
  then ``W' = W * s`` per output channel and ``b' = (b - mean) * s + beta``;
- ``fold_batch_norm_forward`` (into the layer after, for batch norm placed after an
  activation as in the seed's Keras CNN): ``conv2d(y, K)`` with no padding becomes
  ``conv2d(x, K * s) + sum(K * t)`` per input channel, and ``flatten(y) @ W`` (optionally
  through a max pooling, which commutes with ``x * s + t`` when every ``s > 0``) becomes
  ``flatten(x) @ (W * s) + flatten(t) @ W``.

The pattern matched is the graph ``batch_normalization_test`` builds:
``add(mul(sub(x, mean), gamma, invstd, ...), beta)`` whose statistics and parameters are
per-channel tensors (length 1 on every axis but axis 1) that depend on constants and shared
variables only.  When they are constants (parameters frozen for inference, see
``minigraph.nn.compile_inference``) the new weights are computed here, once, and become
constants; otherwise they stay small graphs on the shared variables.  Both rules are local
rules of the rewrite framework, so every firing is in the rewrite log.  The pipeline
``"fast_run_fold_bn"`` runs them first and then ``"fast_run"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigraph.compile.shared import SharedVariable
from minigraph.graph.basic import Constant, Variable, graph_inputs
from minigraph.rewriting.framework import LocalPass, local_rule
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S
from minigraph.tensor.basic import constant
from minigraph.tensor.nnet.conv import Conv2d
from minigraph.tensor.signal.pool import Pool


@dataclass
class BatchNormMatch:
    """An inference-mode batch norm ``(x - mean) * prod(factors) + beta`` found in a graph."""

    out: Variable
    x: Variable
    mean: Variable
    factors: list
    beta: Variable


def _elemwise(v, cls, nin=None):
    node = v.owner
    if node is None or not isinstance(node.op, E.Elemwise) or getattr(node.op, "inplace", None):
        return None
    if not isinstance(node.op.scalar_op, cls) or (nin is not None and len(node.inputs) != nin):
        return None
    return node


def _per_channel(v, x) -> bool:
    """``v`` has x's rank, length 1 on every axis but axis 1, and depends on parameters only."""
    shape = v.type.shape
    if v.ndim != x.ndim or any(s != 1 for i, s in enumerate(shape) if i != 1):
        return False
    return all(isinstance(i, (Constant, SharedVariable)) for i in graph_inputs([v]))


def match_batch_norm(v: Variable) -> BatchNormMatch | None:
    """The inference batch norm whose output is ``v``, or None."""
    add = _elemwise(v, E.Add, 2)
    if add is None or v.ndim not in (2, 4):
        return None
    mul = _elemwise(add.inputs[0], E.Mul)
    beta = add.inputs[1]
    if mul is None or len(mul.inputs) < 2:
        return None
    sub = _elemwise(mul.inputs[0], E.Sub, 2)
    if sub is None:
        return None
    x, mean = sub.inputs
    if x.ndim != v.ndim:
        return None
    factors = list(mul.inputs[1:])
    if not all(_per_channel(p, x) for p in [mean, beta] + factors):
        return None
    return BatchNormMatch(v, x, mean, factors, beta)


def find_batch_norms(fgraph) -> list[BatchNormMatch]:
    """Every inference batch norm in ``fgraph`` (what the folding rules look for)."""
    found = []
    for node in fgraph.toposort():
        for out in node.outputs:
            m = match_batch_norm(out)
            if m is not None:
                found.append(m)
    return found


# --- building the folded weights ---------------------------------------------------------------

def _vector(p):
    """A per-channel tensor (1, C[, 1, 1]) as a vector (C,)."""
    return S.reshape(p, (-1,))


def _frozen(expr):
    """``expr`` computed now when it depends on constants only (frozen parameters), else ``expr``."""
    if not all(isinstance(i, Constant) for i in graph_inputs([expr])):
        return expr
    from minigraph.backends.python import PythonLinker
    from minigraph.graph.fg import FunctionGraph

    (value,) = PythonLinker(FunctionGraph([], [expr]))([])
    return constant(np.asarray(value, dtype=expr.dtype))


def _scale_shift(m: BatchNormMatch, dtype):
    """(s, t) as vectors: y = x * s + t per channel."""
    s = _vector(M.mul(*m.factors)) if len(m.factors) > 1 else _vector(m.factors[0])
    t = M.sub(_vector(m.beta), M.mul(_vector(m.mean), s))
    return M.cast(s, dtype), M.cast(t, dtype)


def _linear(v, fgraph):
    """(kind, node, bias) when ``v`` is ``dot(h, W)`` / ``conv2d(h, W)``, optionally plus a
    per-channel bias, and nothing else reads the product; else None."""
    bias = None
    add = _elemwise(v, E.Add, 2)
    if add is not None:
        for k in (0, 1):
            if _per_channel(add.inputs[1 - k], v) and add.inputs[k].owner is not None:
                v, bias = add.inputs[k], add.inputs[1 - k]
                break
        else:
            return None
    node = v.owner
    if node is None or len(fgraph.clients.get(v, ())) != 1:
        return None
    if isinstance(node.op, M.Dot) and node.inputs[0].ndim == 2 and node.inputs[1].ndim == 2:
        return "dense", node, bias
    if isinstance(node.op, Conv2d):
        return "conv", node, bias
    return None


def _row(vec, ndim):
    return E.DimShuffle(("x", 0) if ndim == 2 else ("x", 0, "x", "x"), 1)(vec)


@local_rule("fold_batch_norm", E.Add)
def fold_batch_norm(fgraph, node):
    """BN(h @ W + b) -> h @ W' + b' (and the same for conv2d), W' = W * s per output channel."""
    m = match_batch_norm(node.outputs[0])
    if m is None or len(fgraph.clients.get(m.x, ())) != 1:
        return None
    found = _linear(m.x, fgraph)
    if found is None:
        return None
    kind, lin, bias = found
    out = node.outputs[0]
    h, w = lin.inputs
    s, t = _scale_shift(m, w.dtype)
    if kind == "dense":
        w_new = _frozen(M.mul(w, E.DimShuffle(("x", 0), 1)(s)))
    else:
        w_new = _frozen(M.mul(w, E.DimShuffle((0, "x", "x", "x"), 1)(s)))
    b_new = t if bias is None else M.add(M.mul(_vector(bias), s), t)  # (b - mean) * s + beta
    b_new = _frozen(M.cast(b_new, out.dtype))
    new = M.add(lin.op(h, w_new), _row(b_new, out.ndim))
    return [M.cast(new, out.dtype) if new.dtype != out.dtype else new]


def _positive(s) -> bool:
    """True when the vector ``s`` is known now (constants) and every entry is > 0."""
    v = _frozen(s)
    return isinstance(v, Constant) and bool(np.all(np.asarray(v.data) > 0))


def _single_client(fgraph, v) -> bool:
    """Only one node reads the values of ``v`` (others may read its shape, which the
    replacement recomputes from its own nodes)."""
    readers = [c for c, _ in fgraph.clients.get(v, ())
               if c == "output" or not isinstance(c.op, (S.Shape, S.ShapeI))]
    return len(readers) == 1


@local_rule("fold_batch_norm_forward", Conv2d, M.Dot)
def fold_batch_norm_forward(fgraph, node):
    """conv2d(BN(x), K) (no padding) -> conv2d(x, K * s) + sum(K * t); flatten([maxpool](BN(x))) @ W
    (or BN(x) @ W) -> flatten([maxpool](x)) @ (W * s) + flatten(t) @ W."""
    y, w = node.inputs
    if isinstance(node.op, Conv2d):
        m = match_batch_norm(y)
        if m is None or m.x.ndim != 4 or not _single_client(fgraph, y):
            return None
        if node.op.border_mode not in ("valid", (0, 0)):
            return None  # zero padding is not x * s + t at the border: no exact fold
        s, t = _scale_shift(m, w.dtype)
        w_new = _frozen(M.mul(w, E.DimShuffle(("x", 0, "x", "x"), 1)(s)))
        b_new = _frozen(M.sum(M.mul(w, E.DimShuffle(("x", 0, "x", "x"), 1)(t)), axis=(1, 2, 3)))
        return [M.add(node.op(m.x, w_new), _row(b_new, 4))]
    if y.ndim != 2 or w.ndim != 2:
        return None
    m = match_batch_norm(y)
    if m is not None:  # BN(x) @ W
        if not _single_client(fgraph, y):
            return None
        s, t = _scale_shift(m, w.dtype)
        w_new = _frozen(M.mul(w, E.DimShuffle((0, "x"), 1)(s)))
        b_new = _frozen(M.dot(t, w))
        return [M.add(M.dot(m.x, w_new), _row(b_new, 2))]
    flat = y.owner
    if flat is None or not isinstance(flat.op, S.Reshape) or not _single_client(fgraph, y):
        return None
    src = flat.inputs[0]
    pool = None
    if src.owner is not None and isinstance(src.owner.op, Pool):
        pool = src.owner
        if not _single_client(fgraph, src):
            return None
        src = pool.inputs[0]
    m = match_batch_norm(src)
    if m is None or m.x.ndim != 4 or not _single_client(fgraph, src):
        return None
    c, hh, ww = (pool.outputs[0] if pool is not None else src).type.shape[1:]
    if None in (c, hh, ww) or flat.outputs[0].type.shape[1] != c * hh * ww:
        return None  # the flattened layout must be (channel, row, column), known statically
    s, t = _scale_shift(m, w.dtype)
    if pool is not None:
        op = pool.op
        commutes = (op.mode == "max" and _positive(s)) or (op.mode != "max" and op.pad == (0, 0))
        if not commutes:
            return None

    def per_feature(v):  # one value per channel -> one per flattened (channel, row, column)
        return S.reshape(S.broadcast_to(E.DimShuffle((0, "x", "x"), 1)(v), (c, hh, ww)), (-1,))

    w_new = _frozen(M.mul(w, E.DimShuffle((0, "x"), 1)(per_feature(s))))
    b_new = _frozen(M.dot(per_feature(t), w))
    inner = pool.op(m.x) if pool is not None else m.x
    x_flat = S.reshape(inner, (S.shape_i(inner, 0), c * hh * ww))  # new lengths: nothing reads the old nodes
    return [M.add(M.dot(x_flat, w_new), _row(b_new, 2))]


#: the rules, in the order the folding pass tries them
BN_FOLDING_RULES = [fold_batch_norm, fold_batch_norm_forward]


def bn_folding_pass() -> LocalPass:
    """The pass that folds every foldable inference batch norm."""
    return LocalPass("bn_folding", BN_FOLDING_RULES)


def _fast_run_fold_bn():
    from minigraph.rewriting import _fast_run

    return [bn_folding_pass()] + _fast_run()


def _fold_bn_only():
    return [bn_folding_pass()]


def register() -> None:
    """Add the pipelines "fast_run_fold_bn" (folding, then fast_run) and "fold_bn" (folding only)."""
    from minigraph.rewriting import PIPELINES

    PIPELINES.setdefault("fast_run_fold_bn", _fast_run_fold_bn)
    PIPELINES.setdefault("fold_bn", _fold_bn_only)


register()

__all__ = ["fold_batch_norm", "fold_batch_norm_forward", "find_batch_norms", "match_batch_norm", "BN_FOLDING_RULES",
           "bn_folding_pass", "register"]
