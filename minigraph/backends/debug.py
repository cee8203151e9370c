"""mode="debug": run the Numba backend and check every kernel against the reference.

Each node's compiled result is compared with the node's numpy ``perform`` on the same input
values, so the first node that differs is named precisely (its op, its listing line and the
user's line that built it) instead of an error that has spread through the graph.
"""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import format_trace


class DebugModeError(AssertionError):
    """A compiled kernel's output differs from the reference interpreter's."""


def _tolerance(dtype) -> tuple[float, float]:
    kind, size = np.dtype(dtype).kind, np.dtype(dtype).itemsize
    if kind != "f":
        return 0.0, 0.0
    return (1e-4, 1e-5) if size <= 4 else (1e-9, 1e-12)


def compare(node, inputs, outputs) -> None:
    """Raise DebugModeError when ``outputs`` (compiled) differ from ``node.op.perform(inputs)``."""
    with np.errstate(all="ignore"):
        expected = node.op.perform(node, [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in inputs])
    for j, (got, want, var) in enumerate(zip(outputs, expected, node.outputs)):
        if not isinstance(want, np.ndarray):  # random generators and other non-array values
            continue
        problem = None
        got_arr = np.asarray(got)
        if got_arr.dtype != want.dtype or got_arr.shape != want.shape:
            problem = f"got {got_arr.dtype}{got_arr.shape}, the reference gives {want.dtype}{want.shape}"
        else:
            rtol, atol = _tolerance(want.dtype)
            scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=1.0)) if want.dtype.kind == "f" else 1.0
            if want.dtype.kind == "f":
                same = np.allclose(got_arr, want, rtol=rtol, atol=atol * scale, equal_nan=True)
            else:
                same = np.array_equal(got_arr, want)
            if not same:
                diff = np.abs(got_arr.astype("float64") - want.astype("float64"))
                problem = f"largest difference {np.nanmax(diff) if diff.size else 0:.3g}"
        if problem:
            shapes = ", ".join(str(np.shape(x)) for x in inputs)
            raise DebugModeError(f"debug mode: {node.op} (output {j}, {var.type}) differs from the reference: "
                                 f"{problem}\n  input shapes: {shapes}\n  built at: {format_trace(node.trace)}")


class DebugLinker:
    """The Numba backend with every kernel checked against the reference as it runs."""

    def __init__(self, fgraph, profile=None, nan_guard=False):
        from minigraph.backends.numba import NumbaLinker

        self.fgraph = fgraph
        # debug mode also guards against NaN and Inf appearing from finite inputs
        self.numba = NumbaLinker(fgraph, profile=profile, nan_guard=True, observer=compare)
        self.fresh_outputs = self.numba.fresh_outputs

    def __call__(self, inputs):
        return self.numba._run(inputs)  # no reference rerun: a difference must surface

    def source(self) -> str:
        return self.numba.source()

    def kernels(self):
        return self.numba.kernels()
