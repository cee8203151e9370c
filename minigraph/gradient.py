"""Reverse-mode automatic differentiation, graph to graph.

``grad`` walks the nodes between ``wrt`` and the cost in reverse topological order, asks
each op for its vector-Jacobian product (``Op.grad``), and sums the contributions that reach
each variable.  Broadcasting is undone here, in one place (``unbroadcast``), not in every
op's rule.  The result is an ordinary graph: it can be compiled, printed and differentiated
again.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from minigraph.graph.basic import Variable, as_list, graph_inputs, toposort


def _is_float(v) -> bool:
    return np.dtype(v.dtype).kind in "fc"


def unbroadcast(g, x):
    """The gradient ``g`` of a broadcast use of ``x``, summed back to the shape of ``x``."""
    from minigraph.tensor import math as M
    from minigraph.tensor.shape_ops import sum_to_shape

    if g.ndim > x.ndim:
        g = M.sum(g, axis=tuple(range(g.ndim - x.ndim)))
    return sum_to_shape(g, x)


def _needs_unbroadcast(op) -> bool:
    return getattr(op, "broadcasts_inputs", False)


def _relevant(cost_outputs: Sequence[Variable], wrt: Sequence[Variable], stop: set[int]):
    """Nodes on a path from some ``wrt`` to the cost, in topological order."""
    # no stop at an intermediate wrt: another wrt may lie below it (grad(cost, [h, x]), h = f(x))
    nodes = toposort(cost_outputs)
    depends: set[int] = {id(v) for v in wrt}
    on_path = []
    for node in nodes:
        if any(id(i) in depends and id(i) not in stop for i in node.inputs):
            on_path.append(node)
            depends.update(id(o) for o in node.outputs)
    return on_path, depends


def grad(cost, wrt, consider_constant=None, disconnected_inputs="raise", known_grads=None):
    """Symbolic gradient of the scalar ``cost`` with respect to ``wrt`` (a variable or a list).

    ``consider_constant``: variables treated as constants (no gradient flows through them).
    ``disconnected_inputs``: "raise" (default), "warn" or "ignore" when a ``wrt`` does not
    influence the cost; ignored ones get zeros.  ``known_grads``: ``{variable: gradient}``
    to start from (``cost`` may then be None), as when back-propagating a given output
    gradient.
    """
    from minigraph.tensor import math as M
    from minigraph.tensor.basic import as_tensor_variable
    from minigraph.tensor.shape_ops import specify_shape

    if disconnected_inputs not in ("raise", "warn", "ignore"):
        raise ValueError(f"disconnected_inputs must be 'raise', 'warn' or 'ignore', got {disconnected_inputs!r}")
    single = not isinstance(wrt, (list, tuple))
    wrt = as_list(wrt)
    for v in wrt:
        if not isinstance(v, Variable):
            raise TypeError(f"grad: wrt must be symbolic variables, got {v!r}")
        if not _is_float(v):
            raise TypeError(f"grad: cannot differentiate with respect to {v!r} of integer type {v.type}")
    known = dict(known_grads or {})
    if cost is None and not known:
        raise ValueError("grad: cost is None and no known_grads are given")
    seeds: dict[int, list] = {}
    roots = []
    if cost is not None:
        cost = as_tensor_variable(cost)
        if cost.ndim != 0:
            raise TypeError(f"grad: the cost must be a scalar, got {cost.type} "
                            f"(sum or average it first, or use known_grads)")
        if not _is_float(cost):
            raise TypeError(f"grad: the cost {cost!r} has integer type {cost.type}")
        seeds[id(cost)] = [M.ones_like(cost)]
        roots.append(cost)
    for var, g in known.items():
        g = as_tensor_variable(g)
        if g.ndim != var.ndim:
            raise ValueError(f"grad: known gradient of {var!r} has {g.ndim} dimensions, expected {var.ndim}")
        if any(s is not None and t is not None and s != t and s != 1 for s, t in zip(g.type.shape, var.type.shape)):
            raise ValueError(f"grad: the known gradient of {var!r} has static shape {g.type.shape}, "
                             f"the variable {var.type.shape}")
        known_shape = g.type.shape == var.type.shape and None not in var.type.shape
        if not known_shape and all(s != 1 or t == 1 for s, t in zip(g.type.shape, var.type.shape)):
            # a gradient has its variable's shape: say so, so that the rewrites know it
            g = specify_shape(g, *M._shape_list(var))
        seeds.setdefault(id(var), []).append(M.cast(g, var.dtype) if _is_float(var) else g)
        roots.append(var)

    stop = {id(v) for v in as_list(consider_constant or [])}
    nodes, depends = _relevant(roots, wrt, stop)
    grads = seeds  # id(variable) -> list of contributions
    reached = {id(r) for r in roots}

    def total(v):
        parts = grads.get(id(v))
        if not parts:
            return None
        g = parts[0] if len(parts) == 1 else M.add(*parts)
        grads[id(v)] = [g]
        return g

    for node in reversed(nodes):
        out_grads = [total(o) for o in node.outputs]
        if all(g is None for g in out_grads):
            continue
        wanted = [id(i) in depends and id(i) not in stop for i in node.inputs]
        in_grads = node.op.grad(list(node.inputs), list(node.outputs), out_grads)
        if len(in_grads) != len(node.inputs):
            raise ValueError(f"{node.op}.grad returned {len(in_grads)} gradients for {len(node.inputs)} inputs")
        for inp, g, want in zip(node.inputs, in_grads, wanted):
            if g is None or not want or not _is_float(inp):
                continue
            if _needs_unbroadcast(node.op):
                g = unbroadcast(g, inp)
            if g.dtype != inp.dtype:
                g = M.cast(g, inp.dtype)
            grads.setdefault(id(inp), []).append(g)
            reached.add(id(inp))

    results = []
    for v in wrt:
        g = total(v)
        if g is None:
            if id(v) not in reached and id(v) not in {id(r) for r in roots}:
                message = (f"grad: the cost does not depend on {v!r} ({v.type}): it is disconnected from the "
                           f"graph (pass disconnected_inputs='ignore' to get zeros)")
                if disconnected_inputs == "raise":
                    raise ValueError(message)
                if disconnected_inputs == "warn":
                    warnings.warn(message, stacklevel=2)
            g = M.zeros_like(v)
        results.append(g)
    return results[0] if single else results


def hessian_vector_product(cost, wrt, vectors):
    """The gradient of <grad(cost, wrt), vectors> with respect to ``wrt``: H v, as a graph."""
    from minigraph.tensor import math as M

    wrt = as_list(wrt)
    g = grad(cost, wrt)
    inner = M.add(*[M.sum(M.mul(gi, vi)) for gi, vi in zip(g, as_list(vectors))])
    return grad(inner, wrt)


def verify_grad(fn, points, n_tests=2, rng=None, eps=None, abs_tol=None, rel_tol=None, mode="python"):
    """Check the symbolic gradient of ``fn`` against central finite differences.

    ``fn`` maps symbolic tensors (one per point) to a tensor; the check uses a random
    projection ``sum(fn(*xs) * u)`` so that one scalar comparison covers the whole Jacobian
    (the dot-product test).  Raises AssertionError with the largest error on failure.
    """
    import minigraph as mg
    from minigraph.tensor import math as M
    from minigraph.tensor.basic import tensor

    if isinstance(rng, np.random.RandomState):  # Theano's tests pass one
        rng = rng.randint(2**31)
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    points = [np.asarray(p) for p in points]
    floats = [p.dtype for p in points if p.dtype.kind == "f"]
    dtype = np.result_type(*floats) if floats else np.dtype("float64")
    eps = eps if eps is not None else (1e-7 if dtype == np.float64 else 3e-3)
    tol = 1e-4 if dtype == np.float64 else 1e-2
    abs_tol = tol if abs_tol is None else abs_tol
    rel_tol = tol if rel_tol is None else rel_tol
    xs = [tensor(p.dtype, (None,) * p.ndim, name=f"x{i}") for i, p in enumerate(points)]
    out = fn(*xs)
    out_value = mg.function(xs, out, mode=mode, on_unused_input="ignore")(*points)
    for _ in range(n_tests):
        u = rng.standard_normal(np.shape(out_value)).astype(out.dtype)
        cost = M.sum(M.mul(out, u))
        f = mg.function(xs, cost, mode=mode, on_unused_input="ignore")
        # integer points (labels, indices) are inputs but get no gradient
        wrt = [x for x in xs if _is_float(x)]
        g_list = mg.function(xs, grad(cost, wrt, disconnected_inputs="ignore"), mode=mode,
                             on_unused_input="ignore")(*points) if wrt else []
        g_iter = iter(g_list)
        gs = [next(g_iter) if _is_float(x) else None for x in xs]
        for i, p in enumerate(points):
            if p.dtype.kind != "f":
                continue
            direction = rng.standard_normal(p.shape).astype(p.dtype)
            plus = [q.copy() for q in points]
            minus = [q.copy() for q in points]
            plus[i] = p + eps * direction
            minus[i] = p - eps * direction
            numeric = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
            analytic = float(np.sum(np.asarray(gs[i], dtype="float64") * direction))
            err = abs(numeric - analytic)
            if err > abs_tol and err > rel_tol * max(abs(numeric), abs(analytic)):
                raise AssertionError(f"verify_grad: gradient of input {i} differs from finite differences: "
                                     f"analytic {analytic!r}, numeric {numeric!r} (abs error {err:.3g})")
    return True


__all__ = ["grad", "verify_grad", "unbroadcast", "hessian_vector_product", "graph_inputs"]
