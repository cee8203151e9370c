"""The reference interpreter: run each node's numpy ``perform`` in topological order."""
from __future__ import annotations

import time

import numpy as np

from minigraph.graph.basic import Constant, format_trace


def node_error(node, exc: Exception, fgraph=None) -> Exception:
    """``exc`` re-raised with the node (as ``listing`` prints it, when the graph is known),
    its input types and the user's line attached."""
    inputs = ", ".join(str(v.type) for v in node.inputs)
    where = f"{node.op} on ({inputs})"
    if fgraph is not None:
        from minigraph.printing.text import canonical_namer, node_line

        where = f"{node_line(node, canonical_namer(fgraph.outputs, fgraph.inputs))}\n  input types: ({inputs})"
    message = f"{exc}\n  while computing {where}\n  built at: {format_trace(node.trace)}"
    if isinstance(exc, MemoryError) or (isinstance(exc, ValueError) and "array is too big" in str(exc)):
        # numpy's _ArrayMemoryError takes (shape, dtype), not a message, and a size past int64
        # is a ValueError: both are a buffer too large for memory
        buffers = ", ".join(f"{o!r}: {o.type}" for o in node.outputs)
        return MemoryError(message + f"\n  the buffer: {buffers}")
    try:
        return type(exc)(message)
    except Exception:  # exception types with unusual constructors
        return RuntimeError(message)


def _finite(a) -> bool:
    a = np.asarray(a)
    return a.dtype.kind not in "fc" or bool(np.isfinite(a).all())


def _value_range(v, x) -> str:
    """``'x': float32[?, 3] in [0, 2]`` for the NaN guard's message."""
    a = np.asarray(x)
    if a.dtype.kind in "biuf" and a.size:
        return f"{v!r}: {v.type} in [{np.min(a):.4g}, {np.max(a):.4g}]"
    return f"{v!r}: {v.type}, shape {a.shape}"


def _bad_values(a) -> str:
    a = np.asarray(a)
    kinds = [(int(np.isnan(a).sum()), "NaN"), (int(np.isposinf(a).sum()), "+Inf"), (int(np.isneginf(a).sum()), "-Inf")]
    return ", ".join(f"{n} {k}" for n, k in kinds if n) + f" of {a.size} values"


def _first_bad_step(scalar_op, inputs) -> tuple | None:
    """For a fused program: (index, formula, argument names and values) of the first step
    that turns finite arguments into NaN or Inf."""
    from minigraph.tensor.elemwise import Composite

    if not isinstance(scalar_op, Composite):
        return None
    slots = [np.asarray(x) for x in inputs]
    names = [f"i{i}" for i in range(scalar_op.n_inputs)]
    with np.errstate(all="ignore"):
        for k, (op, args) in enumerate(scalar_op.program):
            vals = [slots[a] for a in args]
            out = np.asarray(op.impl(*vals))
            formula = f"{op.name}({', '.join(names[a] for a in args)})"
            if all(_finite(v) for v in vals) and not _finite(out):
                return k, formula, [(names[a], slots[a]) for a in args]
            slots.append(out)
            names.append(formula)
    return None


def check_finite(node, inputs, outputs) -> None:
    """NaN guard: raise at the first node that turns finite inputs into NaN or Inf."""
    if not all(_finite(x) for x in inputs) or all(_finite(o) for o in outputs):
        return
    bad = ", ".join(f"output {i}: {_bad_values(o)}" for i, o in enumerate(outputs) if not _finite(o))
    lines = [f"nan_guard: {node.op} produced NaN or Inf from finite inputs ({bad})",
             "  inputs: " + "; ".join(_value_range(v, x) for v, x in zip(node.inputs, inputs))]
    scalar_op = getattr(node.op, "scalar_op", None)
    found = _first_bad_step(scalar_op, inputs) if scalar_op is not None else None
    trace = node.trace
    if found is not None:
        k, step, args = found
        lines.append(f"  first step of the fused program to do so: {step}")
        lines.append("  its arguments: " + "; ".join(
            f"{name} in [{np.min(x):.4g}, {np.max(x):.4g}]" if np.size(x) and np.asarray(x).dtype.kind in "biuf"
            else f"{name} of shape {np.shape(x)}" for name, x in args))
        # the fusion rewrite keeps the user's line of every step of the program
        step_traces = getattr(node, "step_traces", ())
        if k < len(step_traces) and step_traces[k] is not None:
            trace = step_traces[k]
    lines.append(f"  built at: {format_trace(trace)}")
    raise FloatingPointError("\n".join(lines))


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
        # profile keys "c = mul": each node is a kernel here, named as in listing(f)
        self.profile_keys = _profile_keys(fgraph) if profile is not None else None

    def __call__(self, inputs):
        storage = [None] * self.n_slots
        for s, value in self.constants:
            storage[s] = value
        for s, value in zip(self.input_slots, inputs):
            storage[s] = value
        profile = self.profile
        call_start = time.perf_counter() if profile is not None else 0.0
        for k, (node, in_slots, out_slots) in enumerate(self.program):
            args = [storage[s] for s in in_slots]
            start = time.perf_counter() if profile is not None else 0.0
            try:
                outs = node.op.perform(node, args)
            except (ValueError, IndexError, TypeError, ZeroDivisionError, FloatingPointError, MemoryError) as e:
                raise node_error(node, e, self.fgraph) from None
            if profile is not None:
                profile.record(self.profile_keys[k], time.perf_counter() - start)
            for var, out in zip(node.outputs, outs):
                _check_result(node, var, out)
            if self.nan_guard:
                check_finite(node, args, outs)
            for s, out in zip(out_slots, outs):
                storage[s] = out
        if profile is not None:
            profile.record_call(time.perf_counter() - call_start)
        return [storage[s] for s in self.output_slots]


def _profile_keys(fgraph) -> list[str]:
    from minigraph.printing.text import canonical_namer

    namer = canonical_namer(fgraph.outputs, fgraph.inputs)
    return [f"{', '.join(namer(o) for o in node.outputs)} = {node.op}" for node in fgraph.toposort()]


def _check_result(node, var, value) -> None:
    t = var.type
    if not hasattr(t, "shape_matches"):
        return
    if not isinstance(value, np.ndarray) or value.dtype != t.dtype or value.ndim != t.ndim or not t.shape_matches(value.shape):
        got = f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
        raise TypeError(f"internal error: {node.op} returned {got} for an output of type {t}")
