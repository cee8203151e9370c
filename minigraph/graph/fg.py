"""FunctionGraph: a private copy of a graph with its inputs, outputs and the clients of
every variable, that rewrites edit in place."""
from __future__ import annotations

from collections.abc import Sequence

from minigraph.graph.basic import Apply, Variable, clone_replace, toposort


class FunctionGraph:
    """The graph between ``inputs`` and ``outputs``, copied so that edits do not touch the
    user's graph.  ``clients[v]`` lists ``(node, input_index)`` pairs, with ``("output", i)``
    for graph outputs."""

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable], clone: bool = True):
        self.inputs = list(inputs)
        self.outputs = clone_replace(list(outputs), stop_at=self.inputs) if clone else list(outputs)
        self.rebuild_clients()

    def rebuild_clients(self) -> None:
        self.clients: dict[Variable, list] = {}
        for v in self.inputs:
            self.clients.setdefault(v, [])
        for node in self.toposort():
            for i, v in enumerate(node.inputs):
                self.clients.setdefault(v, []).append((node, i))
            for o in node.outputs:
                self.clients.setdefault(o, [])
        for i, v in enumerate(self.outputs):
            self.clients.setdefault(v, []).append(("output", i))

    def toposort(self) -> list[Apply]:
        return toposort(self.outputs, stop_at=self.inputs)

    @property
    def apply_nodes(self) -> list[Apply]:
        return self.toposort()

    def variables(self) -> list[Variable]:
        return list(self.clients)

    def replace(self, old: Variable, new: Variable, reason: str | None = None) -> None:
        """Make every client of ``old`` use ``new`` instead (types must agree)."""
        if old is new:
            return
        if not (old.type == new.type or _compatible(old.type, new.type)):
            raise TypeError(f"replace ({reason}): {old!r} of type {old.type} cannot become {new!r} of type {new.type}")
        for client, i in self.clients.get(old, []):
            if client == "output":
                self.outputs[i] = new
            else:
                client.inputs[i] = new
        self.rebuild_clients()

    def replace_all(self, pairs, reason: str | None = None) -> None:
        for old, new in pairs:
            self.replace(old, new, reason)

    def __len__(self) -> int:
        return len(self.toposort())

    def __repr__(self) -> str:
        return f"FunctionGraph({len(self.inputs)} inputs, {len(self)} nodes, {len(self.outputs)} outputs)"


def _compatible(old_type, new_type) -> bool:
    """``new`` may replace ``old`` when it has the same dtype and rank and no conflicting static length."""
    return (
        getattr(old_type, "dtype", None) == getattr(new_type, "dtype", None)
        and getattr(old_type, "ndim", None) == getattr(new_type, "ndim", None)
        and all(a is None or b is None or a == b for a, b in zip(old_type.shape, new_type.shape))
    )
