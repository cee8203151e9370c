"""Inlining of composite ops: every ``OpFromGraph`` node (batch normalization, a user's own
composite) is replaced by a copy of its inner graph on the node's inputs.

This runs before merge and fusion: the gradient of a composite op is derived from the
same inner graph, so once both are inlined, merge finds the forward statistics (batch mean,
variance) and the backward pass's copies of them to be the same nodes, and each is
computed once.
"""
from __future__ import annotations

from minigraph.rewriting.framework import apply_replacement


def _opfromgraph_class():
    try:
        from minigraph.graph.opfromgraph import OpFromGraph
    except ImportError:  # composite ops not available: nothing to inline
        return None
    return OpFromGraph


def inline_composites(fgraph, log, max_rounds: int = 10) -> int:
    """Replace every OpFromGraph node by its inner graph (nested ones too); returns the count."""
    cls = _opfromgraph_class()
    if cls is None:
        return 0
    total = 0
    for _ in range(max_rounds):
        nodes = [n for n in fgraph.toposort() if isinstance(n.op, cls)]
        if not nodes:
            break
        for node in nodes:
            if node not in fgraph.nodes:
                continue
            outs = node.op.inline(list(node.inputs))
            if apply_replacement(fgraph, log, "inline_composite", list(zip(node.outputs, outs))):
                total += 1
    return total
