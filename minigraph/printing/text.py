"""Graphs as text: ``listing`` (one node per line, the canonical form), ``debugprint`` (an
indented tree) and ``pp`` (an infix expression).

Every user-given name passes through ``escape`` or ``Namer`` before it is printed, so a name
holding quotes, backslashes or newlines cannot break a line, a listing or generated code.
"""
from __future__ import annotations

import io
import keyword
import re
import sys

import numpy as np

from minigraph.graph.basic import Constant, Variable, as_list, graph_inputs, toposort

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def escape(name) -> str:
    """A user-given name as printable text: backslashes, quotes and control characters escaped."""
    name = str(name)
    if name.isprintable() and "\\" not in name and "'" not in name and '"' not in name:
        return name  # nothing to escape: the usual case
    out = []
    for ch in name:
        if ch == "\\":
            out.append("\\\\")
        elif ch in "'\"":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32 or ord(ch) == 127 or not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def op_text(op) -> str:
    """``str(op)`` on one line: an op's text may hold user strings (an OpFromGraph's name)."""
    text = str(op)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else escape(ch) for ch in text)


def is_identifier(name) -> bool:
    """True for names usable as-is in listings and generated Python code."""
    return isinstance(name, str) and bool(_IDENT.match(name)) and not keyword.iskeyword(name)


def identifier(name: str) -> str:
    """``name`` made into a Python identifier: other characters become ``_``."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", str(name)) or "_"
    if s[0].isdigit() or keyword.iskeyword(s):
        s = "_" + s
    return s


def constant_text(v: Constant) -> str:
    """A constant's value on one line; scalars (also length-1 broadcast ones) as plain numbers."""
    if v.name:
        return escape(v.name)
    data = np.asarray(v.data)
    if data.size == 1:
        item = data.reshape(-1)[0]
        text = str(item)
        if data.dtype.kind == "b":
            text = str(bool(item))
        return text
    return " ".join(repr(v).split())


def type_text(v: Variable) -> str:
    """``float32[?, 784]``: a variable's dtype and static shape."""
    return str(v.type)


def _letters(n: int, base: str) -> str:
    s = ""
    while True:
        s = chr(ord(base) + n % 26) + s
        n = n // 26 - 1
        if n < 0:
            return s


class Namer:
    """Short, stable names for the variables of one graph: user names where given (made into
    identifiers, de-duplicated with ``_2``, ``_3``...), else ``a, b, ..., z, aa, ab...``.

    Shared by listings, debug output and the Numba code generator, so that printed graphs and
    generated source use the same names.  Names are always valid Python identifiers; an
    escaped form of the original name is in ``original(v)`` when it had to be changed.
    """

    def __init__(self, reserved=()):
        self.names: dict[int, str] = {}
        self.used: set[str] = set(reserved)
        #: names that fresh short names avoid but user names may still take
        self.reserved: set[str] = set()
        self.counter = 0
        self._vars: dict[int, Variable] = {}  # keeps named variables alive so ids stay unique

    def fresh(self) -> str:
        """The next unused short name."""
        while True:
            s = _letters(self.counter, "a")
            self.counter += 1
            if s not in self.used and s not in self.reserved and not keyword.iskeyword(s):
                self.used.add(s)
                return s

    def __call__(self, v: Variable) -> str:
        if id(v) in self.names:
            return self.names[id(v)]
        if v.name:
            base = v.name if is_identifier(v.name) else identifier(v.name)
            name, k = base, 1
            while name in self.used or keyword.iskeyword(name):
                k += 1
                name = f"{base}_{k}"
            self.used.add(name)
        else:
            name = self.fresh()
        self.names[id(v)] = name
        self._vars[id(v)] = v
        return name

    def reserve_names(self, outputs, inputs=()) -> None:
        """Keep the graph's own names (valid identifiers) away from the short names, so that a
        fresh ``y`` never stands beside a user's ``y``."""
        from minigraph.graph.basic import ancestors

        for v in ancestors(as_list(outputs), stop_at=inputs):
            if v.name and is_identifier(v.name) and id(v) not in self.names:
                self.reserved.add(v.name)

    def original(self, v: Variable) -> str | None:
        """The escaped user name when the printed name differs from it, else None."""
        if v.name and self(v) != v.name:
            return escape(v.name)
        return None

    def ref(self, v: Variable) -> str:
        """How ``v`` appears as an argument: its name, or the value of an unnamed constant."""
        if isinstance(v, Constant) and not v.name:
            return constant_text(v)
        return self(v)


# --- what a printable object holds -------------------------------------------------------------

class GraphView:
    """The outputs of a variable, a list of variables or a compiled function, with what a
    compiled function adds: which outputs are updates, and the kernel of each node."""

    def __init__(self, obj):
        from minigraph.graph.fg import FunctionGraph

        if isinstance(obj, FunctionGraph):  # a graph being rewritten: its outputs, up to its inputs
            self.function, self.outputs, self.inputs = None, list(obj.outputs), list(obj.inputs)
            self.labels = [f"output {i}" for i in range(len(self.outputs))]
            self.kernels = {}
            return
        fgraph = getattr(obj, "fgraph", None)
        self.function = obj if fgraph is not None and hasattr(obj, "_thunk") else None
        if fgraph is not None:
            self.outputs = list(fgraph.outputs)
            self.inputs = list(fgraph.inputs)
        else:
            self.outputs = as_list(obj)
            self.inputs = []
            for i, v in enumerate(self.outputs):
                if not isinstance(v, Variable):
                    raise TypeError(f"printing: expected a variable, a list of variables or a compiled function, "
                                    f"got {type(v).__name__} at position {i}")
        self.labels = self._labels()
        self.kernels = _kernel_map(self.function) if self.function is not None else {}

    def _labels(self) -> list[str]:
        f = self.function
        if f is None:
            return [f"output {i}" for i in range(len(self.outputs))]
        n = len(f.outputs)
        labels = [f"output {i}" for i in range(n)]
        for var, _ in f.updates:
            labels.append(f"update of {escape(var.name)!s}" if var.name else "update of a shared variable")
        return labels[: len(self.outputs)] + [f"output {i}" for i in range(len(labels), len(self.outputs))]

    def nodes(self):
        """The apply nodes, in topological order."""
        return toposort(self.outputs, stop_at=self.inputs)

    def roots(self):
        """Inputs, shared variables and constants, in first-use order."""
        return graph_inputs(self.outputs, stop_at=self.inputs) if self.inputs else graph_inputs(self.outputs)


def _kernel_map(f) -> dict[int, str]:
    """id(Apply) -> kernel label, from what the backend exposes (see ``printing.kernels``)."""
    from minigraph.printing.kernels import backend_groups, kernels_of

    out: dict[int, str] = {}
    if not backend_groups(f):  # the python backend runs node by node: nothing to tag
        return out
    for k in kernels_of(f):
        for node in k.nodes:
            out[id(node)] = k.label
    return out


def root_kind(v: Variable) -> str:
    """"constant", "shared" or "input" for a variable without owner."""
    if isinstance(v, Constant):
        return "constant"
    from minigraph.compile.shared import SharedVariable

    return "shared" if isinstance(v, SharedVariable) else "input"


def canonical_namer(outputs, inputs=()) -> Namer:
    """A Namer that has named the graph's variables in listing order (roots first, then each
    node's outputs in topological order): the names ``listing`` prints for this graph."""
    namer = Namer()
    namer.reserve_names(outputs, inputs)
    for v in graph_inputs(outputs, stop_at=inputs):
        if not isinstance(v, Constant):
            namer(v)
    for node in toposort(outputs, stop_at=inputs):
        for o in node.outputs:
            namer(o)
    return namer


# --- listing -------------------------------------------------------------------------------------

def node_line(node, namer: Namer) -> str:
    """One node as the listing prints it: ``c = mul(a, b) :: float32[100, 784]``."""
    outs = ", ".join(namer(o) for o in node.outputs)
    args = ", ".join(namer.ref(i) for i in node.inputs)
    types = ", ".join(type_text(o) for o in node.outputs)
    return f"{outs} = {op_text(node.op)}({args}) :: {types}"


def listing(outputs, namer: Namer | None = None, print_kernels: bool = True, mark=None,
            mark_note: str = "batch statistic") -> str:
    """One node per line in topological order: ``c = mul(a, b) :: float32[100, 784]``.

    ``outputs``: a variable, a list of variables or a compiled function (its rewritten graph,
    with the kernel of each node as a trailing comment when the backend groups nodes).
    ``mark``: a predicate on variables; nodes with a marked output get ``# <mark_note>``
    (``mark="statistics"`` marks the batch-norm statistics).
    """
    if mark == "statistics":
        from minigraph.printing.graphs import is_statistic

        mark = is_statistic
    view = GraphView(outputs)
    if namer is None:
        namer = Namer()
        namer.reserve_names(view.outputs, view.inputs)
    lines = []
    for v in view.roots():
        if isinstance(v, Constant):
            continue
        line = f"{namer(v)} = {root_kind(v)} :: {type_text(v)}"
        orig = namer.original(v)
        lines.append(line + (f"  # name: '{orig}'" if orig else ""))
    for node in view.nodes():
        line = node_line(node, namer)
        notes = [f"name: '{o}'" for o in map(namer.original, node.outputs) if o]
        if mark is not None and any(mark(o) for o in node.outputs):
            notes.append(mark_note)
        if print_kernels and id(node) in view.kernels:
            notes.append(view.kernels[id(node)])
        lines.append(line + (f"  # {'; '.join(notes)}" if notes else ""))
    f = view.function
    n_out = len(f.outputs) if f is not None else len(view.outputs)
    lines.append("return " + ", ".join(namer.ref(o) for o in view.outputs[:n_out]))
    if f is not None:
        for (var, _), new in zip(f.updates, view.outputs[n_out:]):
            lines.append(f"update {namer(var)} <- {namer.ref(new)}")
    return "\n".join(lines)


# --- debugprint ------------------------------------------------------------------------------------

def _short_id(n: int) -> str:
    return _letters(n, "A")


def node_label(v: Variable, print_type: bool = False) -> str:
    """``op`` (``op.i`` for output i of a multi-output op) or the root's kind, then its name."""
    if v.owner is not None:
        text = op_text(v.owner.op)
        if len(v.owner.outputs) > 1:
            text += f".{v.index}"
    elif isinstance(v, Constant):
        text = "constant " + constant_text(v) if v.name is None else "constant"
    else:
        text = root_kind(v)
    if v.name:
        text += f" '{escape(v.name)}'"
    if print_type:
        text += f" :: {type_text(v)}"
    return text


def debugprint(obj, depth: int = -1, print_type: bool = False, file=None, inner_graphs: bool = True) -> str:
    """Print a graph as an indented tree; a node met again shows only its ``[id X]``.

    ``obj`` is a variable, a list of variables, a FunctionGraph or a compiled function (then
    the rewritten graph that runs, each node tagged with its kernel and each tree with the output or update
    it computes).  ``depth`` limits the levels shown (-1: all); ``print_type`` adds each
    variable's dtype and static shape; ``inner_graphs`` prints the inner graph of composite
    ops (batch normalization) after the main trees.  Prints to ``file`` (default stdout;
    ``file="str"`` prints nothing) and returns the text.
    """
    view = GraphView(obj)
    seen: dict[int, str] = {}
    buf = io.StringIO()
    composites: list = []  # (op, id label) of composite ops met, in order
    trees = [(out, label if (len(view.outputs) > 1 or view.function is not None) else None, "")
             for out, label in zip(view.outputs, view.labels)]
    _print_trees(trees, {id(v) for v in view.inputs}, view.kernels, seen, composites, buf, depth, print_type)
    if inner_graphs and composites:
        buf.write("\nInner graphs:\n")
        done: list = []
        k = 0
        while k < len(composites):
            op, ident = composites[k]
            k += 1
            if any(op == d for d in done):
                continue
            done.append(op)
            inner_in, inner_out = op.inner_graph()
            buf.write(f"\n{op_text(op)} [id {ident}]\n")
            labels = [f"inner output {i}" for i in range(len(inner_out))]
            _print_trees([(o, lab, " >") for o, lab in zip(inner_out, labels)], set(), {}, seen, composites, buf,
                         depth, print_type)
    text = buf.getvalue()
    if file != "str":
        (file or sys.stdout).write(text)
    return text


def _print_trees(trees, stop, kernels, seen, composites, buf, depth, print_type) -> None:
    for out, label, prefix in trees:
        stack = [(out, 0, label)]
        while stack:
            v, level, top = stack.pop()
            pad = prefix + " |" * level
            text = node_label(v, print_type)
            if v.owner is not None and id(v) not in stop:
                key = id(v.owner)
                if key in seen:
                    buf.write(f"{pad}{text} [id {seen[key]}] ...{_top(top)}\n")
                    continue
                seen[key] = _short_id(len(seen))
                if callable(getattr(v.owner.op, "inner_graph", None)):
                    composites.append((v.owner.op, seen[key]))
                kernel = kernels.get(key)
                buf.write(f"{pad}{text} [id {seen[key]}]{' ' + kernel if kernel else ''}{_top(top)}\n")
                if depth < 0 or level + 1 < depth:
                    for inp in reversed(v.owner.inputs):
                        stack.append((inp, level + 1, None))
            else:
                buf.write(f"{pad}{text}{_top(top)}\n")


def _top(label) -> str:
    return f"  <- {label}" if label else ""


# --- pp ----------------------------------------------------------------------------------------

# precedence: higher binds tighter
_BINARY = {"add": (" + ", 1), "sub": (" - ", 1), "mul": (" * ", 2), "truediv": (" / ", 2),
           "intdiv": (" // ", 2), "mod": (" % ", 2), "pow": (" ** ", 4),
           "lt": (" < ", 0), "gt": (" > ", 0), "le": (" <= ", 0), "ge": (" >= ", 0),
           "eq": (" == ", 0), "neq": (" != ", 0)}
_ATOM = 9


def pp(var, names: bool = True) -> str:
    """An infix expression for ``var``: ``(x - mean(x, axis=0)) * invstd``.

    Named intermediate variables appear by name (``names=False`` expands them); broadcasting
    dimshuffles are left out; a sum divided by the count of its reduced elements reads as
    ``mean``.
    """
    from minigraph.tensor.elemwise import DimShuffle, Elemwise
    from minigraph.tensor.math import Reduce
    from minigraph.tensor.shape_ops import ShapeI

    if not isinstance(var, Variable):
        raise TypeError(f"pp: expected a variable, got {type(var).__name__}")
    memo: dict[int, tuple] = {}  # id -> (text, precedence, binary op name or "")

    def wrap(item, need: bool) -> str:
        return f"({item[0]})" if need else item[0]

    def axis_text(axis) -> str:
        return str(axis[0]) if len(axis) == 1 else "(" + ", ".join(map(str, axis)) + ")"

    def show(v) -> tuple[str, int]:
        if id(v) in memo:
            return memo[id(v)]
        stack = [v]
        while stack:  # post-order without recursion, so deep graphs do not overflow
            u = stack[-1]
            pending = [i for i in (u.owner.inputs if u.owner is not None and (u is var or not u.name or not names)
                                   else [])
                       if id(i) not in memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if id(u) not in memo:
                item = render(u)
                memo[id(u)] = item if len(item) == 3 else (item[0], item[1], "")
        return memo[id(v)]

    def render(v) -> tuple[str, int]:
        if v.owner is None or (v.name and v is not var and names):
            if isinstance(v, Constant):
                return constant_text(v), _ATOM
            return (_pp_name(v.name) if v.name else f"<{v.type}>"), _ATOM
        node, op = v.owner, v.owner.op
        args = [memo[id(i)] for i in node.inputs]
        if isinstance(op, Elemwise):
            name = op.scalar_op.name
            mean = _mean_of(node, Reduce, ShapeI, DimShuffle)
            if mean is not None:
                x, axis = mean
                return f"mean({show(x)[0]}, axis={axis_text(axis)})", _ATOM
            if name in _BINARY and len(args) >= 2:
                sym, prec = _BINARY[name]
                right_assoc = name == "pow"
                parts = []
                for k, a in enumerate(args):
                    first = k == 0
                    if right_assoc:
                        need = a[1] < prec or (a[1] == prec and first)
                    elif first:
                        need = a[1] < prec
                    else:  # a later operand of equal precedence keeps its parentheses unless it is
                        # the same associative op: a - (b - c), a * (b / c), but a + b + c
                        need = a[1] < prec or (a[1] == prec and not (name in ("add", "mul") and a[2] == name))
                    parts.append(wrap(a, need))
                return sym.join(parts), prec, name
            if name == "neg":
                return "-" + wrap(args[0], args[0][1] < 3), 3
            if name.startswith("cast{"):
                return f"{name[5:-1]}({args[0][0]})", _ATOM
        if isinstance(op, DimShuffle):
            if op.is_transpose and op.new_order == tuple(reversed(range(op.input_ndim))) and op.input_ndim == 2:
                return wrap(args[0], args[0][1] < _ATOM) + ".T", _ATOM
            if [o for o in op.new_order if o != "x"] == sorted(o for o in op.new_order if o != "x"):
                return args[0]  # only inserts or drops broadcast axes
        if isinstance(op, ShapeI):
            return f"{wrap(args[0], args[0][1] < _ATOM)}.shape[{op.i}]", _ATOM
        if isinstance(op, Reduce):
            return f"{type(op).__name__.lower()}({args[0][0]}, axis={axis_text(op.axis)})", _ATOM
        text = f"{op_text(op)}({', '.join(a[0] for a in args)})"
        if len(node.outputs) > 1:
            text += f"[{v.index}]"
        return text, _ATOM

    return show(var)[0]


def _pp_name(name: str) -> str:
    return name if is_identifier(name) else f"'{escape(name)}'"


def _mean_of(node, Reduce, ShapeI, DimShuffle):
    """(x, axis) when ``node`` divides sum(x, axis) by the number of elements it summed."""
    from minigraph.tensor.math import Sum

    if node.op.scalar_op.name != "truediv":
        return None
    num, den = node.inputs
    while num.owner is not None and isinstance(num.owner.op, DimShuffle):
        num = num.owner.inputs[0]
    if num.owner is None or not isinstance(num.owner.op, Sum):
        return None
    x, axis = num.owner.inputs[0], num.owner.op.axis
    while den.owner is not None and (isinstance(den.owner.op, DimShuffle)
                                     or getattr(den.owner.op, "scalar_op", None) is not None
                                     and str(den.owner.op.scalar_op).startswith("cast{")):
        den = den.owner.inputs[0]
    static = [x.type.shape[a] for a in axis]
    if isinstance(den, Constant):
        return (x, axis) if None not in static and float(np.prod(static)) == float(np.asarray(den.data)) else None
    if len(axis) == 1 and den.owner is not None and isinstance(den.owner.op, ShapeI):
        if den.owner.op.i == axis[0] and _same_shape_source(den.owner.inputs[0], x):
            return x, axis
    return None


def _same_shape_source(a, b) -> bool:
    return a is b or (a.type.shape == b.type.shape and a.owner is not None and b.owner is not None
                      and a.owner.op == b.owner.op and all(p is q for p, q in zip(a.owner.inputs, b.owner.inputs)))


def expand_composites(outputs) -> list[Variable]:
    """A copy of the graph with every composite op (batch normalization, OpFromGraph) replaced
    by its inner graph, so that a picture or listing shows the primitives inside it."""
    outputs = as_list(outputs)
    memo: dict[int, Variable] = {}
    for node in toposort(outputs):
        inputs = [memo.get(id(v), v) for v in node.inputs]
        if callable(getattr(node.op, "inline", None)):
            new = node.op.inline(inputs)
            for old, v in zip(node.outputs, new):
                if old.name and v.owner is not None and not v.name:
                    v.name = old.name
        elif all(a is b for a, b in zip(inputs, node.inputs)) and not any(id(v) in memo for v in node.inputs):
            continue
        else:
            new = node.clone_with_new_inputs(inputs).outputs
        for old, v in zip(node.outputs, new):
            memo[id(old)] = v
    return [memo.get(id(v), v) for v in outputs]
