"""FunctionGraph: a private copy of a graph with its inputs, outputs and the clients of
every variable, that rewrites edit in place.

The clients map is kept up to date incrementally: ``replace`` imports the nodes of the new
variable's graph that are not there yet, moves the clients of the old variable over, and
drops the nodes that no output needs any more.  The topological order is cached and
recomputed only after a change.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from minigraph.graph.basic import Apply, Variable, clone_replace, toposort


class FunctionGraph:
    """The graph between ``inputs`` and ``outputs``, copied so that edits do not touch the
    user's graph.  ``clients[v]`` lists ``(node, input_index)`` pairs, with ``("output", i)``
    for graph outputs.

    ``update_map`` (output index -> input index) says which outputs are new values of which
    (shared-variable) inputs; ``mg.function`` fills it.  ``inplace_updates`` and
    ``order_constraints`` are set by the in-place rewrite (see ``minigraph.rewriting.inplace``):
    ``order_constraints(fgraph)`` gives ``{node: nodes that must run before it}`` beyond its
    inputs (the readers of a buffer run before the node that overwrites it), worked out from
    the graph as it is whenever the order is needed.
    """

    def __init__(self, inputs: Sequence[Variable], outputs: Sequence[Variable], clone: bool = True):
        self.inputs = list(inputs)
        self.outputs = clone_replace(list(outputs), stop_at=self.inputs) if clone else list(outputs)
        self.update_map: dict[int, int] = {}
        self.inplace_updates: tuple = ()
        self.order_constraints = None
        self.rebuild_clients()

    # --- bookkeeping -------------------------------------------------------------------

    def rebuild_clients(self) -> None:
        """Recompute the clients map and the node set from scratch."""
        self.clients: dict[Variable, list] = {}
        self.nodes: dict[Apply, None] = {}  # insertion-ordered set
        self._order: list[Apply] | None = None
        for v in self.inputs:
            self.clients.setdefault(v, [])
        for node in toposort(self.outputs, stop_at=self.inputs):
            self._add_node(node)
        for i, v in enumerate(self.outputs):
            self.clients.setdefault(v, []).append(("output", i))

    def _add_node(self, node: Apply) -> None:
        self.nodes[node] = None
        for i, v in enumerate(node.inputs):
            self.clients.setdefault(v, []).append((node, i))
        for o in node.outputs:
            self.clients.setdefault(o, [])

    def _import(self, v: Variable) -> None:
        """Add the nodes that ``v`` depends on and that are not in the graph yet."""
        if v in self.clients:
            return
        if v.owner is None:
            self.clients[v] = []
            return
        for node in toposort([v], known=lambda x: x in self.clients or x.owner in self.nodes):
            self._add_node(node)

    def _prune(self, v: Variable) -> None:
        """Drop the node making ``v`` (and, in turn, its producers) if nothing uses it any more."""
        stack = [v]
        while stack:
            v = stack.pop()
            node = v.owner
            if node is None:
                if not self.clients.get(v) and v not in self.inputs:
                    self.clients.pop(v, None)
                continue
            if node not in self.nodes or any(self.clients.get(o) for o in node.outputs):
                continue
            del self.nodes[node]
            for o in node.outputs:
                self.clients.pop(o, None)
            for i, inp in enumerate(node.inputs):
                cl = self.clients.get(inp)
                if cl is not None:
                    try:
                        cl.remove((node, i))
                    except ValueError:
                        pass
                    if not cl:
                        stack.append(inp)

    # --- queries -----------------------------------------------------------------------

    def toposort(self) -> list[Apply]:
        """The nodes in a deterministic topological order (cached between edits)."""
        if self._order is None:
            after = self.order_constraints(self) if self.order_constraints is not None else None
            self._order = toposort(self.outputs, stop_at=self.inputs, after=after)
        return list(self._order)

    def constrain_order(self, constraints) -> None:
        """Set ``order_constraints`` (see the class docstring)."""
        self.order_constraints = constraints
        self._order = None

    @property
    def apply_nodes(self) -> list[Apply]:
        """The nodes in topological order."""
        return self.toposort()

    def variables(self) -> list[Variable]:
        """Every variable of the graph (inputs, constants, node outputs)."""
        return list(self.clients)

    def __contains__(self, node: Apply) -> bool:
        return node in self.nodes

    # --- edits -------------------------------------------------------------------------

    def replace(self, old: Variable, new: Variable, reason: str | None = None) -> None:
        """Make every client of ``old`` use ``new`` instead (types must agree)."""
        self.replace_all([(old, new)], reason)

    def replace_all(self, pairs: Iterable, reason: str | None = None) -> None:
        """Several replacements at once (e.g. all outputs of one node)."""
        pairs = [(o, n) for o, n in pairs if o is not n]
        for old, new in pairs:
            if not (old.type == new.type or _compatible(old.type, new.type)):
                raise TypeError(f"replace ({reason}): {old!r} of type {old.type} cannot become {new!r} "
                                f"of type {new.type}")
        # the clients to move are taken before importing, so that a new graph that uses
        # ``old`` itself (x -> f(x)) keeps using it
        moves = [(old, new, list(self.clients.get(old, ()))) for old, new in pairs]
        for _, new, _ in moves:
            self._import(new)
        for old, new, clients in moves:
            for client, i in clients:
                if client == "output":
                    self.outputs[i] = new
                elif client in self.nodes:
                    client.inputs[i] = new
                else:
                    continue
                cl = self.clients.get(old)
                if cl is not None:
                    try:
                        cl.remove((client, i))
                    except ValueError:
                        pass
                self.clients.setdefault(new, []).append((client, i))
        for old, new, _ in moves:
            self._prune(old)
            self._prune(new)  # a replacement nobody uses (an unused output) is not kept
        self._order = None

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"FunctionGraph({len(self.inputs)} inputs, {len(self)} nodes, {len(self.outputs)} outputs)"


def _compatible(old_type, new_type) -> bool:
    """``new`` may replace ``old`` when it has the same dtype and rank and no conflicting static length."""
    return (
        getattr(old_type, "dtype", None) == getattr(new_type, "dtype", None)
        and getattr(old_type, "ndim", None) == getattr(new_type, "ndim", None)
        and all(a is None or b is None or a == b for a, b in zip(old_type.shape, new_type.shape))
    )
