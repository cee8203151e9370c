"""Comparison views: a graph before and after the rewrites (node counts, ops, a text diff),
and the rewrite log of a compiled function."""
from __future__ import annotations

import difflib
from collections import Counter

from minigraph.printing.text import GraphView, listing


def op_family(node) -> str:
    """``sum{axis=0}`` -> ``sum``; fused programs keep only their kind (``composite``)."""
    return str(node.op).split("{", 1)[0]


def op_counts(obj) -> Counter:
    """How many nodes of each op family a graph (variables or compiled function) has."""
    return Counter(op_family(n) for n in GraphView(obj).nodes())


def node_count(obj) -> int:
    """Apply nodes of a graph (variables or compiled function)."""
    return len(GraphView(obj).nodes())


def compare(before, after, diff: bool = True, context: int = 1, titles=("raw", "rewritten")) -> str:
    """The same computation twice — e.g. the raw gradient graph and the compiled function that
    runs it: node counts, a table of op families, and a unified diff of the two listings."""
    a, b = op_counts(before), op_counts(after)
    na, nb = sum(a.values()), sum(b.values())
    lines = [f"{titles[0]}: {na} nodes; {titles[1]}: {nb} nodes"
             + (f" ({nb / na:.0%} of {titles[0]})" if na else "")]
    families = sorted(set(a) | set(b), key=lambda k: (-(a[k] + b[k]), k))
    width = max([len(k) for k in families] + [2])
    lines.append(f"  {'op':<{width}}  {titles[0]:>8}  {titles[1]:>9}")
    for k in families:
        lines.append(f"  {k:<{width}}  {a[k]:>8}  {b[k]:>9}")
    if diff:
        la = listing(before, print_kernels=False).splitlines()
        lb = listing(after, print_kernels=False).splitlines()
        lines.append("")
        lines += list(difflib.unified_diff(la, lb, fromfile=titles[0], tofile=titles[1], lineterm="", n=context))
    return "\n".join(lines)


def side_by_side(before, after, width: int = 60, titles=("raw", "rewritten")) -> str:
    """The two listings in two columns (long lines cut at ``width``)."""
    la = listing(before, print_kernels=False).splitlines()
    lb = listing(after, print_kernels=False).splitlines()

    def cut(s: str) -> str:
        return s if len(s) <= width else s[: width - 3] + "..."

    rows = [f"{titles[0]:<{width}} | {titles[1]}", f"{'-' * width}-+-{'-' * width}"]
    for i in range(max(len(la), len(lb))):
        left = cut(la[i]) if i < len(la) else ""
        right = cut(lb[i]) if i < len(lb) else ""
        rows.append(f"{left:<{width}} | {right}".rstrip())
    return "\n".join(rows)


def rewrite_report(f, limit: int | None = 50) -> str:
    """The rewrite log of compiled function ``f``: node counts, firings per rule, and each
    firing in order (which rule, what it replaced, by what); ``limit`` caps the firings shown."""
    log = getattr(f, "rewrite_log", None)
    if log is None:
        return ("no rewrite log: this function was compiled without rewrites (rewrites=None) "
                "or the rewrite pipeline is not available")
    lines = []
    summary = getattr(log, "summary", None)
    lines.append(summary() if callable(summary) else f"{len(list(log))} rewrites")
    entries = list(log)
    shown = entries if limit is None else entries[:limit]
    if shown:
        lines.append("")
        width = len(str(len(entries)))
        for i, e in enumerate(shown):
            lines.append(f"{i + 1:>{width}}. {e}")
        if len(shown) < len(entries):
            lines.append(f"... {len(entries) - len(shown)} more (rewrite_report(f, limit=None) shows all)")
    return "\n".join(lines)
