"""``explain(f)``: the kernels of a compiled function as a table — the nodes each one fused,
the bytes it reads and writes, its floating-point operations, and how many passes it makes
over its largest input.

Bytes count what a kernel must move through memory: each array it reads from outside itself
once (through views, which move nothing), and each result it hands to another kernel or
returns.  Intermediates that stay inside a fused kernel cost nothing.  This is the model the
compilation walkthrough (docs/compilation.md) uses to explain why fewer kernels are faster.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from minigraph.graph.basic import Constant
from minigraph.printing import cost
from minigraph.printing.kernels import kernels_of
from minigraph.printing.text import Namer, canonical_namer, op_text


@dataclass
class KernelRow:
    """One kernel of ``explain``'s table."""

    label: str
    kind: str
    nodes: list[str]
    bytes_read: int | None
    bytes_written: int | None
    flops: int | None
    passes: int
    largest_input: str | None
    largest_input_bytes: int | None
    reads: dict = field(default_factory=dict)    # name -> bytes
    writes: dict = field(default_factory=dict)   # name -> bytes
    #: primitive ops computed by the kernel: a fused node counts the steps of its scalar program
    ops: int = 0


@dataclass
class Explanation:
    """The table ``explain`` returns; ``str()`` renders it, ``rows`` holds the numbers."""

    rows: list[KernelRow]
    mode: str
    shapes_from: str

    @property
    def bytes_read(self) -> int | None:
        """Bytes read by all kernels (None if a length is unknown)."""
        return _total(r.bytes_read for r in self.rows)

    @property
    def bytes_written(self) -> int | None:
        """Bytes written by all kernels (None if a length is unknown)."""
        return _total(r.bytes_written for r in self.rows)

    @property
    def flops(self) -> int | None:
        """Estimated floating-point operations of all kernels (None if a length is unknown)."""
        return _total(r.flops for r in self.rows)

    def compute_rows(self) -> list[KernelRow]:
        """Rows of kernels that do work (views and shape queries left out)."""
        return [r for r in self.rows if r.kind not in ("view", "shape") or r.bytes_written]

    def text(self, nodes: bool = True, all_kernels: bool = False) -> str:
        """The table; ``nodes`` adds each kernel's nodes below it; ``all_kernels`` keeps views."""
        rows = self.rows if all_kernels else self.compute_rows()
        head = ["kernel", "kind", "nodes", "ops", "read", "written", "flops", "passes", "largest input"]
        body = [[r.label, r.kind, str(len(r.nodes)), str(r.ops), human_bytes(r.bytes_read), human_bytes(r.bytes_written),
                 human_count(r.flops), str(r.passes),
                 f"{r.largest_input} ({human_bytes(r.largest_input_bytes)})" if r.largest_input else "-"]
                for r in rows]
        hidden = len(self.rows) - len(rows)
        total = ["total", "", str(sum(len(r.nodes) for r in self.rows)), str(sum(r.ops for r in self.rows)),
                 human_bytes(self.bytes_read),
                 human_bytes(self.bytes_written), human_count(self.flops), "", ""]
        widths = [max(len(row[i]) for row in [head, total] + body) for i in range(len(head))]
        right = {2, 3, 4, 5, 6, 7}

        def fmt(row):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

        lines = [f"{len(rows)} kernels ({self.mode} mode; shapes from {self.shapes_from})"
                 + (f", {hidden} views and shape queries not shown" if hidden else ""),
                 fmt(head), fmt(["-" * w for w in widths])]
        lines += [fmt(b) for b in body]
        lines += [fmt(["-" * w for w in widths]), fmt(total)]
        if nodes:
            lines.append("")
            for r in rows:
                lines.append(f"{r.label} ({r.kind}):")
                lines += [f"    {n}" for n in r.nodes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _total(values):
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def human_bytes(n) -> str:
    """``1234567`` -> ``1.23 MB`` (decimal units); None -> ``?``."""
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def human_count(n) -> str:
    """``1234567`` -> ``1.23 M``; None -> ``?``."""
    if n is None:
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def variable_shapes(f, inputs=(), nodes=None) -> dict[int, tuple]:
    """id(variable) -> shape for every variable of ``f``'s graph.

    With ``inputs`` (arrays, or shapes as tuples of ints, one per input of ``f``), the nodes
    (``nodes``: those that run, in order; default the graph's) are run once by their numpy
    ``perform`` and the shapes measured; without them the static shapes of the types are
    used (None where a length is unknown).
    """
    fg = f.fgraph
    nodes = fg.toposort() if nodes is None else nodes
    shapes: dict[int, tuple] = {}
    if not inputs:
        for node in nodes:
            for v in list(node.inputs) + list(node.outputs):
                shapes[id(v)] = tuple(v.type.shape)
        return shapes
    if len(inputs) != len(f.inputs):
        raise TypeError(f"explain: expected {len(f.inputs)} inputs (arrays or shapes), got {len(inputs)}")
    values: dict[int, object] = {}
    for var, value in zip(f.inputs, inputs):
        if isinstance(value, tuple) and all(isinstance(s, (int, np.integer)) for s in value):
            value = np.zeros(value, dtype=var.dtype)
        values[id(var)] = var.type.filter(value, f"explain input {var.name!r}")
    for var in fg.inputs[len(f.inputs):]:
        values[id(var)] = var.get_value(borrow=True)
    with np.errstate(all="ignore"):
        for node in nodes:
            args = [v.data if isinstance(v, Constant) else values[id(v)] for v in node.inputs]
            for v, out in zip(node.outputs, node.op.perform(node, args)):
                values[id(v)] = out
    for node in nodes:
        for v in node.inputs:
            if isinstance(v, Constant):
                values[id(v)] = v.data
    return {key: tuple(np.shape(value)) for key, value in values.items()}


def explain(f, *inputs) -> Explanation:
    """The kernels of compiled function ``f`` with their nodes, bytes moved, flops and passes.

    Give example ``inputs`` (arrays, or shapes such as ``(100, 784)``) to count bytes for
    those sizes; without them static shapes are used and unknown lengths show as ``?``.
    """
    if not hasattr(f, "fgraph"):
        raise TypeError(f"explain: expected a compiled function (mg.function(...)), got {type(f).__name__}")
    kernels = kernels_of(f)
    # the nodes that run: the backend may have replaced composite nodes by their inner graph
    run_nodes = [node for k in kernels for node in k.nodes]
    shape_of = variable_shapes(f, inputs, run_nodes)
    namer = canonical_namer(f.fgraph.outputs, f.fgraph.inputs)  # the listing's names
    home: dict[int, int] = {}
    for k in kernels:
        for node in k.nodes:
            home[id(node)] = k.index
    consumers: dict[int, set] = {}
    for node in run_nodes:
        for v in node.inputs:
            consumers.setdefault(id(v), set()).add(home[id(node)])

    def shape(v):
        return shape_of.get(id(v), tuple(v.type.shape))

    def size(v):
        return cost.nbytes(shape(v), v.dtype)

    rows = []
    for k in kernels:
        made_here = {id(o) for n in k.nodes for o in n.outputs}
        reads: dict[str, int | None] = {}
        per_var_readers: dict[str, int] = {}
        for node in k.nodes:
            if cost.is_view(node) or not cost.reads_data(node):
                continue
            for name, src in {namer.ref(s): s for s in map(_through_views, node.inputs)}.items():
                if id(src) in made_here:
                    continue
                reads[name] = size(src)
                per_var_readers[name] = per_var_readers.get(name, 0) + 1
        writes: dict[str, int | None] = {}
        for node in k.nodes:
            if cost.is_view(node):
                continue
            for o in node.outputs:
                # written unless only this kernel uses it (an output nobody reads is a result)
                if consumers.get(id(o), set()) != {k.index}:
                    writes[namer(o)] = size(o)
        flop = _total(cost.flops(n, shape) for n in k.nodes)
        largest = max(reads, key=lambda n: (reads[n] or 0), default=None)
        passes = k.passes if k.passes is not None else (per_var_readers.get(largest, 0) if largest else 0)
        kind = cost.node_kind(k.nodes[0]) if len(k.nodes) == 1 else (k.kind or "kernel")
        rows.append(KernelRow(k.label, kind, [_node_line(n, namer) for n in k.nodes], _total(reads.values()),
                              _total(writes.values()), flop, int(passes), largest,
                              reads.get(largest) if largest else None, reads, writes,
                              sum(cost.primitive_ops(n) for n in k.nodes)))
    return Explanation(rows, getattr(f, "mode", "?"), "example inputs" if inputs else "static types")


def _through_views(v):
    """The array a kernel really reads when it reads ``v``: dimshuffles and reshapes (views
    with the same elements) are followed back to the array they look at."""
    while v.owner is not None and type(v.owner.op).__name__ in ("DimShuffle", "Reshape"):
        v = v.owner.inputs[0]
    return v


def _node_line(node, namer: Namer) -> str:
    outs = ", ".join(namer(o) for o in node.outputs)
    args = ", ".join(namer.ref(i) for i in node.inputs)
    return f"{outs} = {op_text(node.op)}({args}) :: {', '.join(str(o.type) for o in node.outputs)}"
