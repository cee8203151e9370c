"""Merge (common-subexpression elimination).

Constants with the same type and value become one constant; nodes applying equal ops to
the same inputs become one node.  One sweep in topological order suffices: when a node is
visited its inputs are already merged.
"""
from __future__ import annotations

from minigraph.graph.basic import Constant
from minigraph.rewriting.framework import apply_replacement


def merge(fgraph, log) -> int:
    """Merge equal constants and equal nodes; returns the number of merges."""
    changes = 0
    constants: dict = {}
    for v in list(fgraph.clients):
        if isinstance(v, Constant) and fgraph.clients.get(v):
            key = v.signature()
            first = constants.setdefault(key, v)
            if first is not v and apply_replacement(fgraph, log, "merge_constants", [(v, first)]):
                changes += 1
    seen: dict = {}
    for node in fgraph.toposort():
        if node not in fgraph.nodes:
            continue
        try:
            key = (node.op, tuple(id(i) for i in node.inputs))
            other = seen.setdefault(key, node)
        except TypeError:  # an op with unhashable parameters never merges
            continue
        if other is node or other not in fgraph.nodes:
            seen[key] = node
            continue
        if apply_replacement(fgraph, log, "merge", list(zip(node.outputs, other.outputs))):
            changes += 1
    return changes
