"""Composite ops defined by an inner graph (``OpFromGraph``).

An ``OpFromGraph`` wraps a small graph of primitive ops (its *inner graph*) so that it
appears as ONE node in the user's graph.  Everything about it is derived from the inner
graph, nothing is written twice:

- ``make_node`` checks the outer inputs against the inner inputs' types and infers the
  output types by building the inner graph on the outer inputs;
- ``perform`` runs the inner graph with the numpy reference interpreter;
- ``grad`` copies the inner graph onto the outer inputs and lets the general autodiff
  (``minigraph.grad`` with ``known_grads``) differentiate it, so the gradient is an
  ordinary graph whose intermediate nodes (e.g. a mean or a variance) are visible;
- ``inline`` copies the inner graph onto the outer inputs; the rewrites and backends that
  do not know a composite op replace the node by this copy.

Equality: two ``OpFromGraph`` ops are equal when their inner graphs have the same canonical
form (the same ops applied in the same topological order to the same inputs, constants and
types), so identical composite nodes merge.  Subclasses whose inner graph is a function of
their parameters (e.g. batch normalization) are frozen dataclasses instead: equal and
hashable by those parameters, with the inner graph built lazily from them.

Example (a user's own op)::

    x, y = T.vector("x"), T.vector("y")
    axpy = OpFromGraph([x, y], [2 * x + y], name="axpy")
    z = axpy(a, b)            # one node; mg.grad(z.sum(), a) derives 2 through the inner graph
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from minigraph.graph.basic import Apply, Constant, Op, Variable, clone_replace, graph_inputs, io_toposort


def _is_float(v) -> bool:
    return np.dtype(v.dtype).kind in "fc"


def canonical_form(inputs: Sequence[Variable], outputs: Sequence[Variable]) -> tuple:
    """A hashable description of the graph from ``inputs`` to ``outputs``, independent of
    variable identities and names: the input types, each node as (op, argument references)
    in topological order, and the output references."""
    refs: dict[int, tuple] = {id(v): ("in", i) for i, v in enumerate(inputs)}

    def ref(v):
        r = refs.get(id(v))
        if r is not None:
            return r
        if isinstance(v, Constant):
            return ("const", v.signature())
        raise ValueError(f"OpFromGraph: the inner graph depends on {v!r} ({v.type}), which is neither an inner "
                         f"input nor a constant; pass it as an input")

    nodes = []
    for k, node in enumerate(io_toposort(list(inputs), list(outputs))):
        nodes.append((node.op, tuple(ref(v) for v in node.inputs)))
        for j, o in enumerate(node.outputs):
            refs[id(o)] = ("node", k, j)
    return (tuple(v.type for v in inputs), tuple(nodes), tuple(ref(o) for o in outputs))


class OpFromGraph(Op):
    """An op whose computation, output types and gradient come from an inner graph.

    ``inputs`` are root variables of the inner graph (no owner, no constants), ``outputs``
    variables computed from them (and from constants only).
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable], name: str | None = None):
        inputs, outputs = list(inputs), list(outputs)
        for v in inputs:
            if not isinstance(v, Variable) or v.owner is not None or isinstance(v, Constant):
                raise TypeError(f"OpFromGraph: inner inputs must be root variables such as T.matrix(), got {v!r}")
        if len(set(map(id, inputs))) != len(inputs):
            raise ValueError("OpFromGraph: the same variable is given twice as an inner input")
        if not outputs:
            raise ValueError("OpFromGraph: the inner graph needs at least one output")
        for v in outputs:
            if not isinstance(v, Variable):
                raise TypeError(f"OpFromGraph: inner outputs must be symbolic variables, got {v!r}")
        self._inner = (inputs, outputs)
        self.name = name or "op_from_graph"
        self._key = canonical_form(inputs, outputs)  # also rejects free variables
        self._hash = hash((type(self), self.name, self._key))  # computed once: merging hashes ops often

    # -- the inner graph -------------------------------------------------------------------
    def inner_graph(self) -> tuple[list[Variable], list[Variable]]:
        """(inner inputs, inner outputs); subclasses may build them lazily from parameters."""
        return self._inner

    @property
    def inner_inputs(self) -> list[Variable]:
        """The root variables of the inner graph, one per outer input."""
        return self.inner_graph()[0]

    @property
    def inner_outputs(self) -> list[Variable]:
        """The inner graph's results, one per outer output."""
        return self.inner_graph()[1]

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and (self.name, self._key) == (other.name, other._key)

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self.name

    # -- the op protocol -------------------------------------------------------------------
    def make_node(self, *inputs) -> Apply:
        from minigraph.tensor.basic import as_tensor_variable, build_error

        inner = self.inner_inputs
        inputs = [as_tensor_variable(v) for v in inputs]
        if len(inputs) != len(inner):
            raise build_error(self, inputs, f"expects {len(inner)} inputs, got {len(inputs)}", TypeError)
        for i, (outer, t) in enumerate(zip(inputs, inner)):
            ot, it = outer.type, t.type
            if ot.dtype != it.dtype or ot.ndim != it.ndim or any(
                    a is not None and b is not None and a != b for a, b in zip(ot.shape, it.shape)):
                raise build_error(self, inputs, f"input {i} has type {ot}, the inner graph expects {it}", TypeError)
        if all(o.type == t.type for o, t in zip(inputs, inner)):
            types = [v.type for v in self.inner_outputs]
        else:
            # more precise outer types (static lengths) give more precise output types
            try:
                types = [v.type for v in self.inline(inputs)]
            except (ValueError, TypeError, IndexError) as e:
                first = str(e).splitlines()[0]
                raise build_error(self, inputs, f"the inner graph rejects these inputs: {first}",
                                  type(e)) from None
        return Apply(self, inputs, types)

    def _interpreter(self):
        linker = self.__dict__.get("_linker")
        if linker is None:
            from minigraph.backends.python import PythonLinker
            from minigraph.graph.fg import FunctionGraph

            inputs, outputs = self.inner_graph()
            linker = PythonLinker(FunctionGraph(inputs, outputs, clone=False))
            object.__setattr__(self, "_linker", linker)  # a cache, also on frozen subclasses
        return linker

    def perform(self, node: Apply, inputs: list[np.ndarray]) -> tuple:
        outs = self._interpreter()(list(inputs))
        # an inner output that is an input, or a view of one, would alias the caller's array
        # (and an in-place rewrite downstream could then overwrite that input)
        return tuple(np.array(o, copy=True) if any(np.may_share_memory(o, x) for x in inputs) else o for o in outs)

    def inline(self, outer_inputs: Sequence[Variable]) -> list[Variable]:
        """The inner graph copied onto ``outer_inputs``: one outer variable per output."""
        inner_inputs, inner_outputs = self.inner_graph()
        return clone_replace(inner_outputs, dict(zip(inner_inputs, outer_inputs)))

    def grad(self, inputs: list[Variable], outputs: list[Variable], output_grads: list) -> list:
        """The inner graph's gradient, derived by ``minigraph.grad`` on a copy of it built on
        the outer inputs: the result shows every intermediate node of the inner graph."""
        from minigraph.gradient import grad as mg_grad

        copies = self.inline(inputs)
        known: dict[int, tuple[Variable, Variable]] = {}
        for out, g in zip(copies, output_grads):
            if g is None or isinstance(out, Constant) or not _is_float(out):
                continue
            if id(out) in known:  # the same inner variable returned twice: add the gradients
                from minigraph.tensor import math as M

                g = M.add(known[id(out)][1], g)
            known[id(out)] = (out, g)
        result: list = [None] * len(inputs)
        if not known:
            return result
        # each distinct float outer input once (a variable passed twice gets its gradient once)
        first: dict[int, int] = {}
        for i, v in enumerate(inputs):
            if _is_float(v) and id(v) not in first:
                first[id(v)] = i
        roots = [out for out, _ in known.values()]
        connected = {id(v) for v in graph_inputs(roots, stop_at=inputs)}
        wrt = [inputs[i] for i in first.values() if id(inputs[i]) in connected]
        if not wrt:
            return result
        constants = [v for v in inputs if not _is_float(v)]
        grads = mg_grad(None, wrt, consider_constant=constants, disconnected_inputs="ignore",
                        known_grads={out: g for out, g in known.values()})
        for v, g in zip(wrt, grads):
            result[first[id(v)]] = g
        return result
