"""Shape simplification.

The core of this module is ``ShapeKeys``: for a variable ``v`` and an axis ``d`` it names
the run-time length symbolically, as an int when it is static or as ``("dim", root, j)``
("the length of axis ``j`` of ``root``") by following the length back through the ops that
keep it (elementwise, dimshuffle, reductions, dot, alloc, ...).  Two lengths with the same
key are equal at run time, which is what lets the rules below drop work:

- ``local_shape_constant``: a shape or length known statically becomes a constant;
- ``local_shape_i_canonical``: ``shape_i`` of an intermediate becomes ``shape_i`` of the
  root variable that fixes the length (so that they all merge into one node);
- ``local_useless_sum_to_shape``: the gradient's run-time ``SumToShape`` disappears when
  the gradient already has the target's shape; ``local_useless_specify_shape`` likewise
  drops a shape check that is known to hold;
- ``local_useless_alloc`` / ``local_alloc_in_elemwise``: a broadcast copy (``alloc``) that
  another operand of an elementwise op already broadcasts is dropped;
- ``local_sum_of_broadcast``: a sum over a broadcast axis becomes a multiplication by its
  length; a sum over static length-1 axes becomes a dimshuffle;
- ``local_dimshuffle_chain`` / ``local_reshape_chain``: chains collapse, identities vanish.
"""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import Constant, Variable, ancestors
from minigraph.rewriting.framework import local_rule
from minigraph.rewriting.utils import pad_to, scalar_op
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M
from minigraph.tensor import shape_ops as S
from minigraph.tensor.blas import Gemm
from minigraph.tensor.basic import constant
from minigraph.tensor.subtensor import Subtensor


class ShapeKeys:
    """Symbolic names for run-time lengths (memoized for one run of the pipeline).

    A key is an int (a static length), ``("dim", id(v), d)`` (the length of axis ``d`` of a
    variable ``v`` it cannot be traced further from), ``("len", id(s))`` (the value of an
    integer scalar ``s``), or ``("bcast", frozenset(keys))``: the length numpy's
    broadcasting gives for those lengths (they are equal or 1).  Keys compare with ``==``.
    """

    def __init__(self, fgraph=None):
        self.memo: dict[tuple, object] = {}
        self.roots: dict[tuple, tuple] = {}  # ("dim", ...) key -> (variable, axis); keeps them alive
        self.parent: dict = {}
        # a matrix product only runs when the inner lengths agree, so they name one length
        for node in (fgraph.toposort() if fgraph is not None else ()):
            if isinstance(node.op, M.Dot):
                x, y = node.inputs
                self._union(self.dim_key(x, x.ndim - 1), self.dim_key(y, 0))
            elif isinstance(node.op, Gemm):  # and a gemm's z has the product's shape
                z, _, x, y, _ = node.inputs
                self._union(self.dim_key(x, 1), self.dim_key(y, 0))
                self._union(self.dim_key(z, 0), self.dim_key(x, 0))
                self._union(self.dim_key(z, 1), self.dim_key(y, 1))

    def _find(self, k):
        while k in self.parent:
            k = self.parent[k]
        return k

    def canon(self, key):
        """The canonical form of ``key`` (after the equalities learnt from matrix products)."""
        if isinstance(key, tuple) and key[0] == "bcast":
            return self._bcast([self._find(a) for a in key[1]])
        return self._find(key)

    def _bcast(self, keys):
        ints, atoms = set(), set()
        for k in keys:
            if isinstance(k, int):
                if k != 1:
                    ints.add(k)
            elif k[0] == "bcast":
                atoms |= k[1]
            else:
                atoms.add(k)
        if ints:
            return ints.pop() if len(ints) == 1 else None
        if not atoms:
            return 1
        return next(iter(atoms)) if len(atoms) == 1 else ("bcast", frozenset(atoms))

    def _union(self, a, b) -> None:
        ra, rb = self.canon(a), self.canon(b)
        if ra == rb or (isinstance(ra, int) and isinstance(rb, int)):
            return
        if isinstance(ra, int):  # a static length represents its class
            ra, rb = rb, ra
        if isinstance(rb, tuple) and rb[0] == "bcast" and ra in rb[1]:
            # len(a) == broadcast(len(a), ...) says the others are 1 or equal to it: nothing
            # about a itself (making a stand for a broadcast of itself would never settle)
            return
        if isinstance(ra, tuple) and ra[0] != "bcast":
            self.parent[ra] = rb

    def static(self, key) -> int | None:
        """The static length a key is known to equal, if any."""
        k = self.canon(key)
        return k if isinstance(k, int) else None

    def root(self, key):
        """(variable, axis) for a ``("dim", ...)`` key, else None."""
        return self.roots.get(self.canon(key))

    def _atom(self, kind, v, d=None):
        key = (kind, id(v)) if d is None else (kind, id(v), d)
        self.roots[key] = (v, d)
        return key

    def length_key(self, s: Variable):
        """The key of an integer scalar used as a length (``shape_i``, a constant, ...)."""
        while s.owner is not None and isinstance(s.owner.op, E.Elemwise) and isinstance(s.owner.op.scalar_op, E.Cast) \
                and np.dtype(s.owner.inputs[0].dtype).kind in "iu":
            s = s.owner.inputs[0]
        if isinstance(s, Constant):
            return int(np.asarray(s.data))
        pair = _broadcast_operands(s)
        if pair is not None:  # the broadcast of two lengths (built by ``_broadcast_length``)
            k = self._bcast([self.length_key(pair[0]), self.length_key(pair[1])])
            if k is not None:
                return self.canon(k)
        node = s.owner
        if node is not None and isinstance(node.op, S.ShapeI):
            return self.dim_key(node.inputs[0], node.op.i)
        src = _shape_entry(s)
        if src is not None:
            return self.dim_key(*src)
        return self.canon(self._atom("len", s))

    def _rule(self, v: Variable, d: int):
        """(dependencies, how to combine their keys) for the length of axis ``d`` of ``v``."""
        static = v.type.shape[d]
        if static is not None:
            return [], lambda: static
        node = v.owner

        def own():
            return self.canon(self._atom("dim", v, d))
        if node is None:
            return [], own
        op = node.op
        ins = node.inputs
        if isinstance(op, (E.Elemwise, M.FusedReduce)):
            axis = d
            if isinstance(op, M.FusedReduce):
                kept = [a for a in range(ins[0].ndim) if a not in op.axis]
                axis = kept[d]
            deps = [(i, axis) for i in ins if i.type.shape[axis] != 1]

            def combine():
                k = self._bcast([self.memo[x] for x in deps])
                return own() if k is None else k
            return deps, combine
        if isinstance(op, E.DimShuffle):
            o = op.new_order[d]
            return [(ins[0], o)], lambda: self.memo[(ins[0], o)]
        if isinstance(op, M.Reduce):
            kept = [a for a in range(ins[0].ndim) if a not in op.axis]
            return [(ins[0], kept[d])], lambda: self.memo[(ins[0], kept[d])]
        if isinstance(op, M.Dot):
            x, y = ins
            src = (x, d) if (x.ndim == 2 and d == 0) else (y, y.ndim - 1)
            return [src], lambda: self.memo[src]
        if isinstance(op, Gemm):
            return [(ins[0], d)], lambda: self.memo[(ins[0], d)]
        if isinstance(op, (S.Alloc, S.SumToShape, S.SpecifyShape)):
            lead = len(ins) - 1 - v.ndim
            return [], lambda: self.length_key(ins[1 + lead + d])
        name = type(op).__name__
        if name == "RandomVariable" and v is node.outputs[-1]:  # a sample of shape ``size``
            return [], lambda: self._entry_key(ins[1], d, own)
        if name in ("Softmax", "LogSoftmax", "IncSubtensor", "AdvancedIncSubtensor"):
            return [(ins[0], d)], lambda: self.memo[(ins[0], d)]
        if name == "SoftmaxCrossEntropy":  # one label per row (checked when it runs)
            return [(ins[1], 0)], lambda: self.memo[(ins[1], 0)]
        if name == "AdvancedSubtensor" and all(e == "[]" for e in op.idx) and all(a.ndim == 1 for a in ins[1:]):
            # x[i, j] with vectors i, j: the broadcast length of the indices, then x's other axes
            deps = [(a, 0) for a in ins[1:] if a.type.shape[0] != 1] if d == 0 else [(ins[0], len(op.idx) + d - 1)]

            def gather():
                k = self._bcast([self.memo[x] for x in deps])
                return own() if k is None else k
            return deps, gather
        return [], own

    def _entry_key(self, vec: Variable, d: int, default):
        """The key of entry ``d`` of an int vector used as a shape (``x.shape``, a stack of lengths)."""
        while vec.owner is not None and isinstance(vec.owner.op, E.Elemwise) and isinstance(vec.owner.op.scalar_op, E.Cast):
            vec = vec.owner.inputs[0]
        if isinstance(vec, Constant):
            return int(np.asarray(vec.data)[d])
        node = vec.owner
        if node is not None and isinstance(node.op, S.Shape):
            return self.dim_key(node.inputs[0], d)
        if node is not None and isinstance(node.op, S.MakeVector):
            return self.length_key(node.inputs[d])
        return default()

    def dim_key(self, v: Variable, d: int):
        """The key of the length of axis ``d`` of ``v``."""
        top = (v, d)
        if top in self.memo:
            return self.memo[top]
        stack = [top]
        while stack:
            item = stack[-1]
            if item in self.memo:
                stack.pop()
                continue
            deps, combine = self._rule(*item)
            missing = [x for x in deps if x not in self.memo]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            self.memo[item] = combine()
        return self.memo[top]

    def same_length(self, a, b) -> bool:
        """Two keys name the same run-time length."""
        return self.canon(a) == self.canon(b)

    def same_shape(self, u: Variable, v: Variable) -> bool:
        """``u`` and ``v`` have the same shape at run time."""
        return u.ndim == v.ndim and all(self.same_length(self.dim_key(u, d), self.dim_key(v, d))
                                        for d in range(u.ndim))


def _shape_entry(s):
    """(v, i) when ``s`` is ``shape(v)[i]``, else None."""
    node = s.owner
    if node is None or not isinstance(node.op, Subtensor) or len(node.inputs) != 1 or len(node.op.idx) != 1:
        return None
    i, src = node.op.idx[0], node.inputs[0].owner
    if isinstance(i, int) and src is not None and isinstance(src.op, S.Shape):
        v = src.inputs[0]
        return (v, i % v.ndim) if -v.ndim <= i < v.ndim else None
    return None


def _is_one(v) -> bool:
    return isinstance(v, Constant) and np.ndim(v.data) == 0 and int(np.asarray(v.data)) == 1


def _broadcast_operands(s):
    """(a, b) when the length ``s`` is ``switch(eq(b, 1), a, b)``, the broadcast of lengths
    ``a`` and ``b`` as ``_broadcast_length`` builds it (also once fused into a composite)."""
    node = s.owner
    if node is None or not isinstance(node.op, E.Elemwise):
        return None
    op = node.op.scalar_op
    if isinstance(op, E.Switch):
        cond, a, b = node.inputs
        c = cond.owner
        if c is not None and isinstance(c.op, E.Elemwise) and isinstance(c.op.scalar_op, E.EQ) \
                and c.inputs[0] is b and _is_one(c.inputs[1]):
            return a, b
        return None
    if isinstance(op, E.Composite) and len(op.program) == 2 and op.outputs == (op.n_inputs + 1,):
        (eq, (p, q)), (sw, (c, ia, ib)) = op.program
        n = op.n_inputs
        if isinstance(eq, E.EQ) and isinstance(sw, E.Switch) and c == n and ib == p and max(p, q, ia) < n \
                and _is_one(node.inputs[q]):
            return node.inputs[ia], node.inputs[p]
    return None


def shape_keys(fgraph) -> ShapeKeys:
    """The pipeline's ShapeKeys (kept on the FunctionGraph while rewriting)."""
    keys = fgraph.__dict__.get("_shape_keys")
    if keys is None:
        keys = fgraph.__dict__["_shape_keys"] = ShapeKeys(fgraph)
    return keys


# --- rules ---------------------------------------------------------------------------------

@local_rule("local_shape_constant", S.Shape, S.ShapeI)
def local_shape_constant(fgraph, node):
    """shape(x) / shape_i(x) with static lengths -> constants."""
    x = node.inputs[0]
    if isinstance(node.op, S.ShapeI):
        s = x.type.shape[node.op.i]
        return None if s is None else [constant(np.asarray(s, dtype="int64"))]
    if None in x.type.shape:
        return None
    return [constant(np.asarray(x.type.shape, dtype="int64"))]


@local_rule("local_shape_of_roots", S.Shape)
def local_shape_of_roots(fgraph, node):
    """shape(v) -> a vector of the lengths' roots, when some length does not need ``v``."""
    v = node.inputs[0]
    if v.ndim == 0 or None not in v.type.shape:
        return None
    keys = shape_keys(fgraph)
    lengths = []
    for d in range(v.ndim):
        key = keys.dim_key(v, d)
        static = keys.static(key)
        found = keys.root(key)
        if static is not None:
            lengths.append(constant(np.asarray(static, dtype="int64")))
        elif found is not None and found[1] is not None and found[0] is not v and found[0] in fgraph.clients \
                and not _feeds(fgraph, node, found[0]):
            lengths.append(S.ShapeI(found[1])(found[0]))
        else:
            return None
    # reading the roots' lengths frees ``v`` from being computed first (e.g. a dropout mask
    # drawn with the shape of the layer's output can then be fused with it)
    return [S.MakeVector("int64")(*lengths)]


@local_rule("local_shape_subtensor", Subtensor)
def local_shape_subtensor(fgraph, node):
    """shape(v)[i] -> shape_i(v, i); stack(a, b, ...)[i] -> the i-th scalar."""
    src = _shape_entry(node.outputs[0])
    if src is not None:
        return [S.shape_i(*src)]
    vec = node.inputs[0].owner
    if vec is not None and isinstance(vec.op, S.MakeVector) and len(node.inputs) == 1 and len(node.op.idx) == 1 \
            and isinstance(node.op.idx[0], int) and -len(vec.inputs) <= node.op.idx[0] < len(vec.inputs):
        entry = vec.inputs[node.op.idx[0]]
        return [entry] if entry.type == node.outputs[0].type else None
    return None


@local_rule("local_shape_i_canonical", S.ShapeI)
def local_shape_i_canonical(fgraph, node):
    """shape_i of an intermediate -> shape_i of the root variable fixing that length."""
    keys = shape_keys(fgraph)
    key = keys.dim_key(node.inputs[0], node.op.i)
    if keys.static(key) is not None:
        return [constant(np.asarray(keys.static(key), dtype="int64"))]
    found = keys.root(key)
    if found is None:
        return _broadcast_length(fgraph, node, keys, keys.canon(key))
    if found[1] is None:
        return None
    root, j = found
    if (root is node.inputs[0] and j == node.op.i) or root not in fgraph.clients or _feeds(fgraph, node, root):
        return None
    return [S.ShapeI(j)(root)]


def _broadcast_length(fgraph, node, keys: ShapeKeys, key):
    """shape_i of an elementwise result whose length is the broadcast of several roots'
    lengths -> that broadcast computed from the roots (``a if b == 1 else b``, folded), so
    the result no longer has to be materialized for its length and can be fused with its
    consumers (batch norm's ``gamma * xhat`` feeding ``+ beta`` and the gradient's
    ``sum_to_shape``)."""
    if not (isinstance(key, tuple) and key[0] == "bcast"):
        return None
    roots = [keys.roots.get(a) for a in key[1]]
    if any(r is None or r[1] is None or r[0] not in fgraph.clients or _feeds(fgraph, node, r[0]) for r in roots):
        return None
    # deterministic order (the atoms are a set): by position in the graph, then axis
    pos = {id(v): i for i, v in enumerate(fgraph.variables())}
    roots.sort(key=lambda r: (pos.get(id(r[0]), -1), r[1]))
    length = S.ShapeI(roots[0][1])(roots[0][0])
    one = constant(np.asarray(1, dtype="int64"))
    for v, j in roots[1:]:
        other = S.ShapeI(j)(v)
        # the lengths are equal or 1 (else the elementwise op itself fails): a 1 gives way
        # to the other length; not max(), which would turn a broadcast of 0 and 1 into 1
        length = M.switch(M.eq(other, one), length, other)
    return [length]


def _feeds(fgraph, node, v) -> bool:
    """True when ``v`` depends on an output of ``node``: reading its length there would make a
    cycle (the gradient of ``reshape(x, shape(dot(a, b)))`` has such a length partner)."""
    outs = {id(o) for o in node.outputs}
    return any(id(a) in outs for a in ancestors([v], stop_at=fgraph.inputs))


@local_rule("local_useless_sum_to_shape", S.SumToShape)
def local_useless_sum_to_shape(fgraph, node):
    """sum_to_shape(g, *lengths) -> g when g already has those lengths."""
    keys = shape_keys(fgraph)
    g, *lengths = node.inputs
    for d, s in enumerate(lengths):
        target = keys.length_key(s)
        have = keys.dim_key(g, d)
        # an axis is summed only where the target is 1 and g's length is not
        static = keys.static(target)
        if not (keys.same_length(target, have) or (static is not None and static != 1)):
            return None
    return [g]


@local_rule("local_useless_specify_shape", S.SpecifyShape)
def local_useless_specify_shape(fgraph, node):
    """specify_shape(x, *lengths) -> x when x is already known to have those lengths."""
    keys = shape_keys(fgraph)
    x, *lengths = node.inputs
    if all(keys.same_length(keys.dim_key(x, d), keys.length_key(s)) for d, s in enumerate(lengths)):
        return [x]
    return None


@local_rule("local_useless_alloc", S.Alloc)
def local_useless_alloc(fgraph, node):
    """alloc(v, *lengths) -> v when v already has those lengths."""
    value, *lengths = node.inputs
    out = node.outputs[0]
    if value.ndim != out.ndim or value.dtype != out.dtype:
        return None
    keys = shape_keys(fgraph)
    if all(keys.same_length(keys.dim_key(value, d), keys.length_key(s)) for d, s in enumerate(lengths)):
        return [value]
    return None


@local_rule("local_alloc_in_elemwise", E.Elemwise)
def local_alloc_in_elemwise(fgraph, node):
    """An alloc operand whose broadcast another operand already does -> its value."""
    if node.op.inplace:
        return None
    keys = shape_keys(fgraph)
    ins = node.inputs
    for k, inp in enumerate(ins):
        a = inp.owner
        if a is None or not isinstance(a.op, S.Alloc) or inp.ndim != node.outputs[0].ndim:
            continue
        value, *lengths = a.inputs
        others = [x for j, x in enumerate(ins) if j != k]
        if not others:
            continue
        ok = True
        for d, s in enumerate(lengths):
            want = keys.length_key(s)
            if not any(keys.same_length(keys.dim_key(x, d), want) for x in others):
                # a length-1 axis needs no cover when the value already has length 1 there
                padded = (1,) * (inp.ndim - value.ndim) + value.type.shape
                if not (keys.static(want) == 1 and padded[d] == 1):
                    ok = False
                    break
        if not ok:
            continue
        new_ins = list(ins)
        new_ins[k] = pad_to(value, inp.ndim)
        new = E.Elemwise(node.op.scalar_op)(*new_ins)
        return new if isinstance(new, list) else [new]
    return None


@local_rule("local_sum_of_broadcast", M.Sum)
def local_sum_of_broadcast(fgraph, node):
    """sum over a broadcast axis -> value * length; over static length-1 axes -> dimshuffle."""
    x = node.inputs[0]
    out = node.outputs[0]
    axes = node.op.axis
    if out.dtype != x.dtype:
        return None
    # a sum over static length-1 axes only: drop them
    if all(x.type.shape[a] == 1 for a in axes):
        return [E.DimShuffle(tuple(d for d in range(x.ndim) if d not in axes), x.ndim)(x)]
    a = x.owner
    if a is None or not isinstance(a.op, S.Alloc):
        return None
    keys = shape_keys(fgraph)
    value, *lengths = a.inputs
    pv = pad_to(value, x.ndim)
    for d in range(x.ndim):
        if d not in axes and not keys.same_length(keys.dim_key(pv, d), keys.length_key(lengths[d])):
            return None  # the result itself would still need broadcasting
    bcast = [d for d in axes if pv.type.shape[d] == 1]
    real = [d for d in axes if pv.type.shape[d] != 1]
    if not bcast:
        return None
    s = M.Sum(tuple(real))(pv) if real else pv
    rest = [d for d in range(x.ndim) if d not in real]  # axes of s, by original index
    s = E.DimShuffle(tuple(i for i, d in enumerate(rest) if d not in bcast), len(rest))(s)
    factors = [lengths[d] for d in bcast]
    n = factors[0] if len(factors) == 1 else M.mul(*factors)
    # sum of n copies = value * n (up to rounding: one multiplication instead of n - 1 additions)
    return [M.mul(s, M.cast(n, out.dtype))]


@local_rule("local_dimshuffle_chain", E.DimShuffle)
def local_dimshuffle_chain(fgraph, node):
    """dimshuffle(dimshuffle(x)) -> one dimshuffle; identity patterns vanish."""
    x = node.inputs[0]
    order = node.op.new_order
    inner = x.owner
    if inner is not None and isinstance(inner.op, E.DimShuffle):
        base = inner.inputs[0]
        composed = tuple("x" if o == "x" else inner.op.new_order[o] for o in order)
        if composed == tuple(range(base.ndim)):
            return [base]
        return [E.DimShuffle(composed, base.ndim)(base)]
    # identity: every axis in place, a static length-1 axis possibly dropped and put back
    if len(order) == x.ndim and all(o == d or (o == "x" and x.type.shape[d] == 1) for d, o in enumerate(order)):
        return [x]
    return None


@local_rule("local_reshape_chain", S.Reshape)
def local_reshape_chain(fgraph, node):
    """reshape(reshape(x)) -> one reshape; a reshape to x's own shape vanishes."""
    x, shp = node.inputs
    out = node.outputs[0]
    if x.owner is not None and isinstance(x.owner.op, S.Reshape):
        return [S.Reshape(node.op.ndim)(x.owner.inputs[0], shp)]
    if x.ndim == out.ndim and None not in x.type.shape and x.type.shape == out.type.shape:
        return [x]
    keys = shape_keys(fgraph)
    node_s = shp.owner
    if x.ndim == out.ndim and node_s is not None and isinstance(node_s.op, S.MakeVector):
        if all(keys.same_length(keys.dim_key(x, d), keys.length_key(s)) for d, s in enumerate(node_s.inputs)):
            return [x]
    return None


@local_rule("local_useless_elemwise_cast", E.Elemwise)
def local_useless_cast(fgraph, node):
    """A cast or identity whose output type equals its input's -> the input."""
    op = scalar_op(node.outputs[0])
    if isinstance(op, (E.Cast, E.Identity)) and node.inputs[0].type == node.outputs[0].type:
        return [node.inputs[0]]
    return None


SHAPE_RULES = [local_shape_constant, local_shape_of_roots, local_shape_subtensor, local_shape_i_canonical, local_useless_sum_to_shape,
               local_useless_specify_shape, local_useless_alloc,
               local_alloc_in_elemwise, local_sum_of_broadcast, local_dimshuffle_chain, local_reshape_chain,
               local_useless_cast]
