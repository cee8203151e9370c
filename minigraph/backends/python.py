"""The reference interpreter: run each node's numpy ``perform`` in topological order."""
from __future__ import annotations

import time

import numpy as np

from minigraph.graph.basic import Constant, format_trace


def node_error(node, exc: Exception) -> Exception:
    """``exc`` re-raised with the node, its input types and the user's line attached."""
    inputs = ", ".join(str(v.type) for v in node.inputs)
    message = f"{exc}\n  while computing {node.op} on ({inputs})\n  built at: {format_trace(node.trace)}"
    try:
        return type(exc)(message)
    except Exception:  # exception types with unusual constructors
        return RuntimeError(message)


def check_finite(node, inputs, outputs) -> None:
    """NaN guard: raise at the first node that turns finite inputs into NaN or Inf."""
    def finite(a):
        a = np.asarray(a)
        return a.dtype.kind not in "fc" or bool(np.isfinite(a).all())

    if all(finite(x) for x in inputs) and not all(finite(o) for o in outputs):
        ranges = ", ".join(
            f"[{np.min(x):.4g}, {np.max(x):.4g}]" if np.size(x) and np.asarray(x).dtype.kind in "fiu" else str(np.shape(x))
            for x in inputs)
        raise FloatingPointError(
            f"nan_guard: {node.op} produced NaN or Inf from finite inputs\n  input ranges: {ranges}\n"
            f"  built at: {format_trace(node.trace)}")


class PythonLinker:
    """Interprets a FunctionGraph; also checks that every result has its declared dtype and rank."""

    def __init__(self, fgraph, profile=None, nan_guard=False):
        self.fgraph = fgraph
        self.profile = profile
        self.nan_guard = nan_guard
        slots: dict[int, int] = {}
        self.constants: list[tuple[int, object]] = []

        def slot(v):
            if id(v) not in slots:
                slots[id(v)] = len(slots)
                if isinstance(v, Constant):
                    self.constants.append((slots[id(v)], v.data))
            return slots[id(v)]

        self.input_slots = [slot(v) for v in fgraph.inputs]
        self.program = [(node, [slot(v) for v in node.inputs], [slot(v) for v in node.outputs])
                        for node in fgraph.toposort()]
        self.output_slots = [slot(v) for v in fgraph.outputs]
        self.n_slots = len(slots)

    def __call__(self, inputs):
        storage = [None] * self.n_slots
        for s, value in self.constants:
            storage[s] = value
        for s, value in zip(self.input_slots, inputs):
            storage[s] = value
        profile = self.profile
        for node, in_slots, out_slots in self.program:
            args = [storage[s] for s in in_slots]
            start = time.perf_counter() if profile is not None else 0.0
            try:
                outs = node.op.perform(node, args)
            except (ValueError, IndexError, TypeError, ZeroDivisionError, FloatingPointError, MemoryError) as e:
                raise node_error(node, e) from None
            if profile is not None:
                profile.record(str(node.op), time.perf_counter() - start)
            for var, out in zip(node.outputs, outs):
                _check_result(node, var, out)
            if self.nan_guard:
                check_finite(node, args, outs)
            for s, out in zip(out_slots, outs):
                storage[s] = out
        if profile is not None:
            profile.function_calls += 1
        return [storage[s] for s in self.output_slots]


def _check_result(node, var, value) -> None:
    t = var.type
    if not hasattr(t, "shape_matches"):
        return
    if not isinstance(value, np.ndarray) or value.dtype != t.dtype or value.ndim != t.ndim or not t.shape_matches(value.shape):
        got = f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
        raise TypeError(f"internal error: {node.op} returned {got} for an output of type {t}")
