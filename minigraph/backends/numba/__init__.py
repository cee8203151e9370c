"""The Numba backend: the rewritten graph lowered to compiled CPU loops.

``NumbaLinker(fgraph, profile=None, nan_guard=False)`` returns a thunk (``thunk(input values)
-> outputs then update values``) with ``source()`` (all generated code) and ``kernels()``.

Extending it (e.g. ``conv.py`` for convolutions): register a lowering per op class::

    from minigraph.backends.numba.registry import Inline, Kernel, register

    @register(MyOp)
    def lower_my_op(node, ctx):
        src = '''def kernel(nt, i0, b0):
        o0 = reuse(b0, (i0.shape[0],))
        for j in prange(i0.shape[0]):
            o0[j] = i0[j, 0] * 2
        return (o0,)
    '''
        return Kernel(src, kind="loop", parallel=True)

``Kernel.source`` defines ``def kernel(nt, inputs..., buffers...)`` returning a tuple of the
outputs (``nt``: threads to use, 1 in the serial variant); it is compiled with
``numba.njit`` (serial, and ``parallel=True`` for large work when ``parallel``), cached on
disk, and shared by every node with the same source.  ``Inline(expr)`` is a driver
expression instead.  Return None to fall back to the op's numpy ``perform`` (with a warning).
Full contract: ``minigraph.backends.numba.registry``.  Modules: ``scalar`` (scalar ops as
expressions), ``codegen`` (loop sources), ``lowerings`` (the core ops), ``helpers`` (compiled
helpers kernels call), ``cache`` (disk cache, ``stats()``), ``linker`` (kernel formation and
the driver).

How a function runs: one kernel per node of the rewritten graph (the rewrites have already
fused elementwise regions and reductions; composite ops without a lowering are inlined).
Loops are compiled (a serial variant, and a ``prange`` variant used when a kernel's work
exceeds ``linker.PARALLEL_THRESHOLD`` elements; ``MINIGRAPH_NUM_THREADS`` sets the threads);
views, BLAS products (numpy's ``dot`` into reused buffers) and small ops are driver
expressions; elementwise ops on vectors run as straight-line numpy (compiling a short fused
program would cost more than it saves; a long one is compiled).  A hot function's driver is
compiled too where every step can be (see ``linker``).  Memory: every intermediate keeps its
buffer between calls; results for the user are numpy arrays reused only once the user has
dropped them; a shared variable's update is written into its own buffer where the in-place
rewrite marked it safe.
A call that fails in compiled code is rerun on the reference interpreter, which names the
node (or broadcasts a length 1 known only at run time, as numpy does).

Threads: unless ``OMP_WAIT_POLICY`` is set, importing this package sets it to ``PASSIVE``
(before numba starts its OpenMP threads).  Otherwise those threads spin after every parallel
kernel and take the cores that BLAS's threads need for the next matrix product: on 2 cores
the seed MLP's training step on 2 threads took 112 ms without it and 39 ms with it (54 ms on
1 thread).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from minigraph.backends.numba import lowerings as _lowerings  # noqa: F401  (registers the core ops)
from minigraph.backends.numba.linker import NumbaLinker
from minigraph.backends.numba.registry import Inline, Kernel, LowerContext, lookup, register

try:  # lowerings contributed beside the core ones (convolutions, pooling)
    from minigraph.backends.numba import conv as _conv  # noqa: F401
except ImportError:
    pass

__all__ = ["NumbaLinker", "Inline", "Kernel", "LowerContext", "lookup", "register"]
