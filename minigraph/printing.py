"""Looking at graphs: ``debugprint`` (an indented tree), ``listing`` (one node per line, the
canonical text form), and ``pp`` (an infix expression)."""
from __future__ import annotations

import io
import sys

from minigraph.graph.basic import Constant, Variable, as_list, graph_inputs, toposort


def escape(name: str) -> str:
    """A user-given name as printable text: quotes, backslashes and control characters escaped."""
    text = repr(str(name))[1:-1]
    return text


class Namer:
    """Short stable names: user names where given (escaped, de-duplicated), else a, b, c..."""

    def __init__(self):
        self.names: dict[int, str] = {}
        self.used: set[str] = set()
        self.counter = 0

    def _fresh(self) -> str:
        while True:
            n, s = self.counter, ""
            self.counter += 1
            while True:
                s = chr(ord("a") + n % 26) + s
                n = n // 26 - 1
                if n < 0:
                    break
            if s not in self.used:
                return s

    def __call__(self, v: Variable) -> str:
        if id(v) in self.names:
            return self.names[id(v)]
        if isinstance(v, Constant) and v.name is None:
            return str(v)
        base = escape(v.name) if v.name else self._fresh()
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        self.names[id(v)] = name
        return name


def listing(outputs, namer: Namer | None = None) -> str:
    """One node per line in topological order: ``c = mul(a, b) :: float32[100, 784]``."""
    outputs = as_list(outputs)
    namer = namer or Namer()
    lines = []
    for v in graph_inputs(outputs):
        if not isinstance(v, Constant):
            kind = "shared" if hasattr(v, "get_value") else "input"
            lines.append(f"{namer(v)} = {kind} :: {v.type}")
    for node in toposort(outputs):
        outs = ", ".join(namer(o) for o in node.outputs)
        args = ", ".join(namer(i) for i in node.inputs)
        types = ", ".join(str(o.type) for o in node.outputs)
        lines.append(f"{outs} = {node.op}({args}) :: {types}")
    lines.append("return " + ", ".join(namer(o) for o in outputs))
    return "\n".join(lines)


def debugprint(obj, depth: int = -1, print_type: bool = False, file=None) -> str:
    """Print a graph as an indented tree; a node met again is shown by its id only.

    ``obj`` is a variable, a list of variables or a compiled function (its rewritten graph).
    Returns the text as well as printing it (to ``file``, default stdout).
    """
    fgraph = getattr(obj, "fgraph", None)
    outputs = fgraph.outputs if fgraph is not None else as_list(obj)
    ids: dict[int, str] = {}
    buf = io.StringIO()

    def label(v):
        text = ""
        if v.owner is not None:
            text = str(v.owner.op)
            if len(v.owner.outputs) > 1:
                text += f".{v.index}"
        elif isinstance(v, Constant):
            text = str(v)
        else:
            text = "shared" if hasattr(v, "get_value") else "input"
        if v.name:
            text += f" '{escape(v.name)}'"
        if print_type:
            text += f" :: {v.type}"
        return text

    stack = [(v, 0) for v in reversed(outputs)]
    while stack:
        v, level = stack.pop()
        pad = " |" * level
        key = id(v.owner) if v.owner is not None else id(v)
        if v.owner is not None and key in ids:
            buf.write(f"{pad}{label(v)} [id {ids[key]}] ...\n")
            continue
        if v.owner is not None:
            ids[key] = _short_id(len(ids))
            buf.write(f"{pad}{label(v)} [id {ids[key]}]\n")
            if depth < 0 or level + 1 < depth:
                for inp in reversed(v.owner.inputs):
                    stack.append((inp, level + 1))
        else:
            buf.write(f"{pad}{label(v)}\n")
    text = buf.getvalue()
    (file or sys.stdout).write(text)
    return text


def _short_id(n: int) -> str:
    s = ""
    while True:
        s = chr(ord("A") + n % 26) + s
        n = n // 26 - 1
        if n < 0:
            return s


_INFIX = {"add": " + ", "sub": " - ", "mul": " * ", "truediv": " / ", "pow": " ** ", "lt": " < ",
          "gt": " > ", "le": " <= ", "ge": " >= ", "eq": " == ", "neq": " != "}


def pp(var) -> str:
    """An infix expression for ``var``: ``(x - mean(x, axis=0)) * invstd``."""
    from minigraph.tensor.elemwise import DimShuffle, Elemwise

    memo: dict[int, str] = {}

    def show(v) -> str:
        if id(v) in memo:
            return memo[id(v)]
        if v.owner is None:
            s = escape(v.name) if v.name else (str(v) if isinstance(v, Constant) else f"<{v.type}>")
        else:
            node = v.owner
            op = node.op
            args = [show(i) for i in node.inputs]
            if isinstance(op, Elemwise) and op.scalar_op.name in _INFIX:
                s = "(" + _INFIX[op.scalar_op.name].join(args) + ")"
            elif isinstance(op, Elemwise) and op.scalar_op.name == "neg":
                s = f"-{args[0]}"
            elif isinstance(op, DimShuffle):
                s = args[0]
            else:
                s = f"{op}({', '.join(args)})"
            if v.name and v is not var:
                s = escape(v.name)
        memo[id(v)] = s
        return s

    return show(var)
