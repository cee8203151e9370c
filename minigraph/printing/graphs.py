"""Graphs as data and as pictures: ``to_networkx`` (an ``nx.DiGraph`` for analysis), ``to_dot``
(Graphviz DOT text, written here) and ``render`` (SVG/PNG through Graphviz's ``dot``).

Both views have one node per graph input, shared variable, constant and apply node, keyed
by the listing's names, and one edge per (producer, consumer) pair labelled with the input
positions.  Batch-norm statistics (the mean, variance and inverse standard deviation, as
outputs of a batch-norm node or as named nodes of its inlined or differentiated graph) are
highlighted, and for a compiled function each node carries the kernel it runs in.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from minigraph.graph.basic import Constant
from minigraph.printing import cost
from minigraph.printing.text import GraphView, canonical_namer, constant_text, escape, op_text, root_kind, type_text

#: names the batch-norm op gives its statistics inside its inner graph
STATISTICS_NAMES = ("mean", "var", "invstd")


def is_statistic(v) -> bool:
    """True for a batch-norm statistic: output 1 or 2 (mean, invstd) of a batch-norm node, or a
    variable named mean/var/invstd by the batch-norm inner graph (after inlining or in the
    gradient graph)."""
    owner = v.owner
    if owner is not None and type(owner.op).__name__.startswith("BatchNorm") and v.index in (1, 2):
        return True
    return v.name in STATISTICS_NAMES and owner is not None


class _Model:
    """The nodes and edges shared by the networkx and DOT views."""

    def __init__(self, obj, highlight=None):
        self.view = GraphView(obj)
        view = self.view
        self.namer = canonical_namer(view.outputs, view.inputs)  # the listing's names
        self.nodes: list[dict] = []
        self.edges: list[dict] = []
        key_of: dict[int, str] = {}   # id(variable) -> node key
        out_of: dict[int, int] = {}   # id(variable) -> output index at its node
        marked = _highlighter(highlight)
        returned = {id(v): label for v, label in zip(view.outputs, view.labels)}
        n_const = 0
        order = 0
        for v in view.roots():
            if isinstance(v, Constant):
                key = f"const{n_const}"
                n_const += 1
                while key in self.namer.used:
                    key = f"const{n_const}"
                    n_const += 1
            else:
                key = self.namer(v)
            key_of[id(v)] = key
            out_of[id(v)] = 0
            attrs = dict(kind=root_kind(v), op=None, params={}, dtype=v.type.dtype, shape=tuple(v.type.shape),
                         name=v.name, outputs=[key], order=order, kernel=None, statistic=False,
                         output_of=returned.get(id(v)))
            if isinstance(v, Constant):
                attrs["value"] = constant_text(v)
            self.nodes.append(dict(key=key, var=v, node=None, **attrs))
            order += 1
        for node in view.nodes():
            names = [self.namer(o) for o in node.outputs]
            key = names[0]
            for i, o in enumerate(node.outputs):
                key_of[id(o)] = key
                out_of[id(o)] = i
            first = node.outputs[0]
            stat = any(marked(o) for o in node.outputs)
            outs = [returned[id(o)] for o in node.outputs if id(o) in returned]
            self.nodes.append(dict(
                key=key, var=first, node=node, kind="apply", op=op_text(node.op), params=_params(node.op),
                dtype=first.type.dtype if len(node.outputs) == 1 else [o.type.dtype for o in node.outputs],
                shape=tuple(first.type.shape) if len(node.outputs) == 1 else [tuple(o.type.shape) for o in node.outputs],
                name=first.name if len(node.outputs) == 1 else [o.name for o in node.outputs],
                outputs=names, order=order, kernel=view.kernels.get(id(node)), statistic=stat,
                work=cost.node_kind(node), output_of=", ".join(outs) if outs else None))
            order += 1
            pairs: dict[str, dict] = {}
            for pos, v in enumerate(node.inputs):
                src = key_of[id(v)]
                e = pairs.setdefault(src, dict(source=src, target=key, positions=[], output=out_of[id(v)]))
                e["positions"].append(pos)
            for e in pairs.values():
                e["positions"] = tuple(e["positions"])
                e["position"] = e["positions"][0]
                e["label"] = ",".join(map(str, e["positions"]))
                self.edges.append(e)


def _highlighter(highlight):
    if highlight is None or highlight == "statistics":
        return is_statistic
    if highlight is False:
        return lambda v: False
    if callable(highlight):
        return highlight
    ids = {id(v) for v in highlight}
    return lambda v: id(v) in ids


def _params(op) -> dict:
    try:
        params = op.params()
    except Exception:  # an op with unusual parameters still prints
        return {}
    return {k: v for k, v in params.items() if k != "name"}


# --- networkx ------------------------------------------------------------------------------------

def to_networkx(outputs, highlight=None):
    """The graph as an ``nx.DiGraph``.

    Nodes are keyed by the listing's names (constants: ``const0``, ``const1``...) and carry
    ``kind`` ("input", "shared", "constant", "apply"), ``op``, ``params``, ``dtype``,
    ``shape``, ``name``, ``order`` (topological index), ``outputs`` (names of the node's
    outputs), ``kernel`` (compiled functions with a kernel-forming backend) and
    ``statistic`` (batch-norm statistics).  Edges go from producer to consumer with
    ``positions`` (the consumer's input positions fed by it), ``position`` and ``output``
    (the producer's output index).
    """
    import networkx as nx

    model = _Model(outputs, highlight)
    g = nx.DiGraph()
    for n in model.nodes:
        attrs = {k: v for k, v in n.items() if k not in ("key", "var", "node")}
        g.add_node(n["key"], **attrs)
    for e in model.edges:
        g.add_edge(e["source"], e["target"], positions=e["positions"], position=e["position"],
                   output=e["output"], label=e["label"])
    return g


# --- DOT -----------------------------------------------------------------------------------------

#: graphs with more nodes than this get faster (plainer) Graphviz layout settings
LARGE_GRAPH = 150

#: fill colours by kind of node
STYLE = {
    "input": dict(shape="ellipse", style="filled", fillcolor="#cfe2ff"),
    "shared": dict(shape="ellipse", style="filled,bold", fillcolor="#d1e7dd"),
    "constant": dict(shape="box", style="filled,dashed", fillcolor="#f1f1f1", fontsize="10"),
    "apply": dict(shape="box", style="filled,rounded", fillcolor="#ffffff"),
    "fused": dict(shape="box", style="filled,rounded,bold", fillcolor="#ffe5b4"),
    "composite_op": dict(shape="box3d", style="filled", fillcolor="#e2d9f3"),
    "view": dict(shape="box", style="filled,rounded", fillcolor="#ffffff", color="#888888", fontcolor="#555555"),
    "statistic": dict(style="filled,rounded,bold", fillcolor="#f8d7da", color="#b02a37", penwidth="2"),
}


def dot_string(text) -> str:
    """``text`` as a DOT double-quoted string: quotes and backslashes escaped, so nothing in
    it can end the string or be read as a DOT escape sequence (``\\l``, ``\\N``...)."""
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    s = s.replace("\r", "\\\\r").replace("\n", "\\\\n")
    return '"' + s + '"'


def _label(*lines: str) -> str:
    # our own line breaks are DOT's "\n"; everything user-given was escaped by dot_string
    return '"' + "\\n".join(dot_string(line)[1:-1] for line in lines if line) + '"'


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_dot(outputs, highlight=None, title: str | None = None, rankdir: str = "TB", kernels: bool = True,
           max_label: int = 48) -> str:
    """The graph as Graphviz DOT text.

    Inputs are blue, shared variables green, constants grey and dashed, ops white boxes,
    fused ops orange, composite ops (batch normalization as one node) purple, views grey,
    batch-norm statistics red.  Outputs have a double border.  For a compiled function whose
    backend forms kernels, the nodes of each kernel are drawn in one dashed cluster
    (``kernels=False`` leaves them out).  ``highlight``: variables (or a predicate) to mark
    instead of the batch-norm statistics.
    """
    model = _Model(outputs, highlight)
    ids = {n["key"]: f"n{i}" for i, n in enumerate(model.nodes)}
    lines = ["digraph minigraph {",
             f"  rankdir={rankdir if rankdir in ('TB', 'BT', 'LR', 'RL') else 'TB'};",
             '  node [fontname="Helvetica", fontsize="11"];',
             '  edge [fontname="Helvetica", fontsize="9", color="#555555"];']
    if title:
        lines.append(f"  label={dot_string(title)}; labelloc=t; fontsize=14;")
    if len(model.nodes) > LARGE_GRAPH:
        # straight edges and fewer crossing-reduction rounds: minutes less for dot on big graphs
        lines.append("  nslimit=1; mclimit=0.3; splines=line; remincross=false;")
    clusters: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for n in model.nodes:
        if n.get("kernel"):
            sizes[n["kernel"]] = sizes.get(n["kernel"], 0) + 1
    for n in model.nodes:
        nid = ids[n["key"]]
        style = dict(_style_of(n))
        if n["kind"] == "apply":
            outs = ", ".join(n["outputs"])
            # the user's name in quotes, where the listing had to change it
            named = n["var"].name if len(n["outputs"]) == 1 and n["var"].name not in (None, outs) else None
            head = _shorten(n["op"], max_label)
            if kernels and n.get("kernel") and sizes[n["kernel"]] == 1:
                head = f"{n['kernel']}: {head}"  # a kernel of one node: named in the label, no cluster
            second = f"{outs} :: {_types(n['node'])}"
            label = _label(head, (f"'{escape(named)}'  " if named else "") + _shorten(second, max_label))
        elif n["kind"] == "constant":
            label = _label(_shorten(n["value"], max_label), type_text(n["var"]))
        else:
            shown = f"'{escape(n['name'])}'" if n["name"] else n["key"]
            label = _label(shown, f"{n['kind']} :: {type_text(n['var'])}")
        if n["output_of"]:
            style["peripheries"] = "2"
            label = label[:-1] + "\\n" + dot_string("-> " + n["output_of"])[1:-1] + '"'
        attrs = ", ".join([f"label={label}"] + [f"{k}={dot_string(v)}" for k, v in style.items()])
        line = f"  {nid} [{attrs}];"
        if kernels and n.get("kernel") and sizes[n["kernel"]] > 1:
            clusters.setdefault(n["kernel"], []).append(line)
        else:
            lines.append(line)
    for k, (name, members) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{k} {{")
        lines.append(f"    label={dot_string(name)}; style=dashed; color=\"#d08000\"; fontcolor=\"#d08000\";")
        lines += ["  " + m for m in members]
        lines.append("  }")
    n_inputs = {n["key"]: len(n["node"].inputs) for n in model.nodes if n["node"] is not None}
    for e in model.edges:
        attrs = []
        if len(e["positions"]) > 1 or n_inputs[e["target"]] > 1:  # positions matter only with several inputs
            attrs.append(f"label={dot_string(e['label'])}")
        if e["output"]:
            attrs.append(f"taillabel={dot_string('out ' + str(e['output']))}")
        lines.append(f"  {ids[e['source']]} -> {ids[e['target']]}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _types(node) -> str:
    return ", ".join(str(o.type) for o in node.outputs)


def _style_of(n: dict) -> dict:
    if n["kind"] != "apply":
        return STYLE[n["kind"]]
    if n["statistic"]:
        if n["work"] == "composite_op":  # keep the composite look, with the statistics' red border
            return {**STYLE["composite_op"], "color": STYLE["statistic"]["color"], "penwidth": "2"}
        base = STYLE["fused"] if n["work"] in ("fused_elemwise", "fused_reduce") else STYLE["apply"]
        return {**base, **STYLE["statistic"]}
    if n["work"] in ("fused_elemwise", "fused_reduce"):
        return STYLE["fused"]
    if n["work"] == "composite_op":
        return STYLE["composite_op"]
    if n["work"] in ("view", "shape"):
        return STYLE["view"]
    return STYLE["apply"]


# --- rendering -------------------------------------------------------------------------------------

class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` program is needed to draw pictures and is not installed."""


INSTALL_HINT = ("Graphviz's `dot` program is not installed, so the picture cannot be drawn. Install it with "
                "`sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
                "`conda install graphviz`, or set MINIGRAPH_DOT to the path of `dot`. "
                "The DOT text itself (mg.printing.to_dot) needs nothing.")


def dot_program() -> str | None:
    """Path of Graphviz's ``dot`` (``$MINIGRAPH_DOT`` or found on PATH), or None."""
    env = os.environ.get("MINIGRAPH_DOT")
    if env:
        return env if os.path.exists(env) else shutil.which(env)
    return shutil.which("dot")


def render(obj, path: str, format: str | None = None, timeout: float = 300, **dot_options) -> str:
    """Draw ``obj`` (a variable, list, compiled function, or DOT text) into ``path``.

    The format comes from ``format`` or the file extension (svg, png, pdf; ``.dot`` writes
    the DOT text and needs no Graphviz).  Returns ``path``.  Raises ``GraphvizNotFound``,
    saying how to install it, when the ``dot`` program is missing, and ``TimeoutError`` when
    the layout takes longer than ``timeout`` seconds (graphs of several hundred nodes).
    """
    text = obj if isinstance(obj, str) else to_dot(obj, **dot_options)
    fmt = (format or os.path.splitext(path)[1].lstrip(".") or "svg").lower()
    if fmt == "dot" or fmt == "gv":
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"render: unknown picture format {fmt!r}; use svg, png, pdf or dot")
    program = dot_program()
    if program is None:
        raise GraphvizNotFound(INSTALL_HINT)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix="." + fmt)
    os.close(fd)
    try:
        try:
            proc = subprocess.run([program, f"-T{fmt}", "-o", tmp], input=text.encode("utf-8"),
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            n = text.count("[label=")
            raise TimeoutError(f"render: Graphviz's dot took more than {timeout:g} s to lay out a graph of about "
                               f"{n} nodes; pass a larger timeout=, or draw a part of the graph (one layer, "
                               f"or the forward graph alone)") from None
        if proc.returncode != 0:
            raise RuntimeError(f"render: `dot` failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp made it private; a picture is an ordinary file
        os.replace(tmp, path)  # atomic: a half-written picture never appears under `path`
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def parse_dot(text: str):
    """A tiny reader of the DOT this module writes: (node ids, edges as (a, b) pairs).

    Used by tests to check that escaped labels never break the structure.
    """
    nodes, edges = [], []
    i, n = 0, len(text)
    tokens = []
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ValueError("parse_dot: unterminated string")
            tokens.append(("str", text[i + 1:j]))
            i = j + 1
        elif c.isspace():
            i += 1
        elif text.startswith("->", i):
            tokens.append(("op", "->"))
            i += 2
        elif c in "{}[];=,":
            tokens.append(("op", c))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '{}[];=,"' and not text.startswith("->", j):
                j += 1
            tokens.append(("id", text[i:j]))
            i = j
    depth_sq = 0
    for k, (kind, value) in enumerate(tokens):
        if value == "[" and kind == "op":
            depth_sq += 1
        elif value == "]" and kind == "op":
            depth_sq -= 1
        elif depth_sq == 0 and kind == "id" and value.startswith("n") and value[1:].isdigit():
            prev = tokens[k - 1] if k else ("op", ";")
            if prev == ("op", "->"):
                edges.append((tokens[k - 2][1], value))
            elif k + 1 < len(tokens) and tokens[k + 1] == ("op", "["):
                nodes.append(value)
    if depth_sq != 0:
        raise ValueError("parse_dot: unbalanced brackets")
    return nodes, edges


__all__ = ["to_networkx", "to_dot", "render", "dot_program", "GraphvizNotFound", "is_statistic", "parse_dot",
           "STATISTICS_NAMES"]
