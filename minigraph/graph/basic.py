"""The graph: variables, apply nodes, ops, and the walks over them.

A graph is made of ``Variable`` objects and ``Apply`` nodes.  An ``Apply`` holds an ``Op``,
its input variables and its output variables; every output knows the node that made it
(``owner``) and its position there (``index``).  Inputs of the whole graph have no owner.
All traversals are iterative (deep graphs do not overflow the stack) and deterministic.
"""
from __future__ import annotations

import linecache
import re
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_frame() -> tuple[str, int] | None:
    """(filename, line) of the innermost stack frame outside minigraph: the user's line."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            return (filename, frame.f_lineno)
        frame = frame.f_back
    return None


def format_trace(trace: tuple[str, int] | None) -> str:
    """``File "x.py", line 3: code`` for a (filename, line) pair, or a note that minigraph built it."""
    if trace is None:
        return "(built inside minigraph)"
    filename, lineno = trace
    code = linecache.getline(filename, lineno).strip()
    return f'File "{filename}", line {lineno}' + (f": {code}" if code else "")


class Variable:
    """A symbolic value of some type, made by ``owner`` (an Apply) or given from outside."""

    def __init__(self, type, owner: "Apply | None" = None, index: int | None = None, name: str | None = None):
        self.type = type
        self.owner = owner
        self.index = index
        self.name = name

    def clone(self) -> "Variable":
        """A fresh variable of the same type and name, without an owner."""
        return type(self)(self.type, name=self.name)

    def __repr__(self) -> str:
        if self.name is not None:
            return repr(self.name)
        if self.owner is not None:
            op = self.owner.op
            return f"{op}.out" if len(self.owner.outputs) == 1 else f"{op}.out{self.index}"
        return f"<{self.type}>"

    __str__ = __repr__


class Constant(Variable):
    """A variable whose value is fixed when the graph is built."""

    def __init__(self, type, data: Any, name: str | None = None):
        super().__init__(type, None, None, name)
        self.data = data

    def clone(self) -> "Constant":
        return type(self)(self.type, self.data, name=self.name)

    def signature(self) -> tuple:
        """Equal for constants of equal type and value: what merging compares."""
        data = self.data
        if isinstance(data, np.ndarray):
            return (self.type, data.dtype.str, data.shape, data.tobytes())
        return (self.type, repr(data))

    def __repr__(self) -> str:
        if self.name is not None:
            return repr(self.name)
        data = self.data
        if isinstance(data, np.ndarray) and data.size > 6:
            return f"Constant{{{data.dtype}{list(data.shape)}}}"
        return np.array2string(np.asarray(data), separator=", ") if isinstance(data, np.ndarray) else repr(data)

    __str__ = __repr__


class Apply:
    """One application of an op to input variables, producing output variables."""

    def __init__(self, op: "Op", inputs: Sequence[Variable], output_types: Sequence[Any],
                 trace: tuple[str, int] | None = None):
        self.op = op
        self.inputs = list(inputs)
        self.outputs = [t.make_variable() if hasattr(t, "make_variable") else t for t in output_types]
        for i, out in enumerate(self.outputs):
            out.owner, out.index = self, i
        self.trace = trace if trace is not None else user_frame()

    @property
    def out(self) -> Variable:
        """The single output (error if the op has several)."""
        if len(self.outputs) != 1:
            raise ValueError(f"{self.op} has {len(self.outputs)} outputs")
        return self.outputs[0]

    def clone_with_new_inputs(self, inputs: Sequence[Variable]) -> "Apply":
        """The same op on other inputs (types re-checked by ``make_node``)."""
        node = self.op.make_node(*inputs)
        node.trace = self.trace
        for old, new in zip(self.outputs, node.outputs):
            new.name = old.name
        return node

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(map(repr, self.inputs))})"


class Op:
    """An operation: immutable, equal and hashable by its parameters.

    Subclasses are frozen dataclasses whose fields are the parameters, and define
    ``make_node`` (check inputs, infer output types), ``perform`` (numpy reference) and
    ``grad`` (vector-Jacobian product built from other ops).
    """

    def make_node(self, *inputs) -> Apply:
        raise NotImplementedError

    def perform(self, node: Apply, inputs: list[np.ndarray]) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} has no perform")

    def grad(self, inputs: list[Variable], outputs: list[Variable], output_grads: list) -> list:
        """Gradients of the inputs, given the gradients of the outputs (None: no gradient)."""
        raise NotImplementedError(f"{self} does not define its gradient")

    def __call__(self, *inputs):
        node = self.make_node(*inputs)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def params(self) -> dict:
        """The op's parameters, for printing."""
        fields = getattr(self, "__dataclass_fields__", {})
        return {k: getattr(self, k) for k in fields}

    def __str__(self) -> str:
        params = self.params()
        name = getattr(self, "name", None) or snake_case(type(self).__name__)
        if not params or (list(params) == ["name"]):
            return name
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "name")
        return f"{name}{{{shown}}}"


def snake_case(name: str) -> str:
    """``SumToShape`` -> ``sum_to_shape``, ``ARange`` -> ``arange``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


# --- walks -------------------------------------------------------------------------------

def as_list(x) -> list:
    """``x`` as a list (a single item becomes a one-item list)."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


def toposort(outputs: Iterable[Variable], stop_at: Iterable[Variable] = (),
             known: Callable[[Variable], bool] | None = None, after: dict | None = None) -> list[Apply]:
    """Apply nodes that ``outputs`` depend on, each after the nodes that feed it.

    Deterministic (inputs are visited in order) and iterative.  Variables in ``stop_at``, or
    for which ``known`` says True, are treated as graph inputs.  ``after`` maps a node to
    other nodes it must follow (they must not depend on it).
    """
    ids = set(map(id, stop_at))

    def stopped(v: Variable) -> bool:
        return id(v) in ids or (known is not None and known(v))

    order: list[Apply] = []
    done: set[int] = set()
    for out in outputs:
        if out.owner is None or stopped(out) or id(out.owner) in done:
            continue
        stack = [(out.owner, 0)]
        done.add(id(out.owner))
        while stack:
            node, i = stack.pop()
            inputs = node.inputs
            n = len(inputs)
            follows = after.get(node, ()) if after else ()
            while i < n + len(follows):
                if i < n:
                    inp = inputs[i]
                    owner = inp.owner  # stopped(inp), written out: every rewrite pass runs this loop
                    if owner is not None and (id(inp) in ids or (known is not None and known(inp))):
                        owner = None
                else:
                    owner = follows[i - n]
                i += 1
                if owner is not None and id(owner) not in done:
                    done.add(id(owner))
                    stack.append((node, i))
                    stack.append((owner, 0))
                    break
            else:
                order.append(node)
    return order


def graph_inputs(outputs: Iterable[Variable], stop_at: Iterable[Variable] = ()) -> list[Variable]:
    """Variables without owner (or in ``stop_at``) that ``outputs`` depend on, in first-use order."""
    outputs = list(outputs)
    stop = set(map(id, stop_at))
    seen: set[int] = set()
    result = []

    def visit(v):
        if id(v) not in seen and (v.owner is None or id(v) in stop):
            seen.add(id(v))
            result.append(v)

    for node in toposort(outputs, stop_at):
        for v in node.inputs:
            visit(v)
    for v in outputs:
        visit(v)
    return result


def ancestors(outputs: Iterable[Variable], stop_at: Iterable[Variable] = ()) -> list[Variable]:
    """Every variable that ``outputs`` depend on, themselves included."""
    outputs = list(outputs)
    seen: set[int] = set()
    result = []
    for v in graph_inputs(outputs, stop_at):
        seen.add(id(v))
        result.append(v)
    for node in toposort(outputs, stop_at):
        for v in node.outputs:
            if id(v) not in seen:
                seen.add(id(v))
                result.append(v)
    return result


def clone_replace(outputs: Sequence[Variable], replace: dict | None = None,
                  stop_at: Iterable[Variable] = ()) -> list[Variable]:
    """Copies of ``outputs`` with the variables in ``replace`` substituted.

    Nodes whose inputs are unchanged are rebuilt too (so the result shares no Apply with the
    original graph); graph inputs that are not replaced are kept as they are.
    """
    replace = dict(replace or {})
    memo: dict[int, Variable] = {id(k): v for k, v in replace.items()}
    # the copies made here of variables that nothing replaced upstream: a node all of whose
    # inputs are such copies (or kept as they are) gets its old output types without make_node
    # inferring them again, since make_node would find the same (a plain copy of a graph, as
    # every mg.function makes, runs no type inference)
    faithful: set[int] = set()
    keys = list(replace)
    for node in toposort(outputs, stop_at=list(stop_at) + keys):
        new_inputs = [memo.get(id(v), v) for v in node.inputs]
        if all(id(v) not in memo or id(n) in faithful for v, n in zip(node.inputs, new_inputs)):
            new_node = Apply(node.op, new_inputs, [o.type for o in node.outputs], trace=node.trace)
            for old, new in zip(node.outputs, new_node.outputs):
                new.name = old.name
            faithful.update(id(o) for o in new_node.outputs)
        else:
            new_node = node.clone_with_new_inputs(new_inputs)
        for old, new in zip(node.outputs, new_node.outputs):
            memo[id(old)] = new
    return [memo.get(id(v), v) for v in outputs]


def io_toposort(inputs: Sequence[Variable], outputs: Sequence[Variable]) -> list[Apply]:
    """Nodes between ``inputs`` and ``outputs``, in topological order."""
    return toposort(outputs, stop_at=inputs)
