"""Which nodes of a compiled function run together: the kernels a backend formed.

The python backend runs each node on its own, so each node is a kernel there.  A backend
that groups nodes exposes them on its thunk as ``thunk.kernels``: a sequence of objects with
``nodes`` (the Apply nodes, in order) and optionally ``name``, ``kind`` and ``passes``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KernelInfo:
    """One kernel: its index, the nodes it computes, and what the backend says about it."""

    index: int
    nodes: list
    name: str = ""
    kind: str = ""
    passes: int | None = None
    source: str | None = None

    @property
    def label(self) -> str:
        """``k3``: how printed graphs refer to this kernel."""
        return f"k{self.index}"


def backend_groups(f) -> bool:
    """True when ``f``'s backend formed kernels of its own (``thunk.kernels``)."""
    return getattr(getattr(f, "_thunk", None), "kernels", None) is not None


def kernels_of(f) -> list[KernelInfo]:
    """The kernels of compiled function ``f`` in execution order (one per node in python mode)."""
    thunk = getattr(f, "_thunk", None)
    found = getattr(thunk, "kernels", None)
    if callable(found):
        found = found()
    if found:
        out = []
        for i, k in enumerate(found):
            nodes = list(getattr(k, "nodes", None) or [])
            out.append(KernelInfo(i, nodes, name=str(getattr(k, "name", "") or ""),
                                  kind=str(getattr(k, "kind", "") or ""),
                                  passes=getattr(k, "passes", None),
                                  source=_source(k)))
        return out
    nodes = f.fgraph.toposort()
    return [KernelInfo(i, [node], name=str(node.op), kind=_kind(node)) for i, node in enumerate(nodes)]


def _source(k) -> str | None:
    src = getattr(k, "source", None)
    if callable(src):
        src = src()
    return src if isinstance(src, str) else None


def _kind(node) -> str:
    from minigraph.printing.cost import node_kind

    return node_kind(node)
