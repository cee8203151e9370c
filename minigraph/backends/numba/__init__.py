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
expressions), ``codegen`` (loop sources), ``lowerings`` (the core ops), ``cache`` (disk cache,
``stats()``), ``linker``.
"""
from minigraph.backends.numba import lowerings as _lowerings  # noqa: F401  (registers the core ops)
from minigraph.backends.numba.linker import NumbaLinker
from minigraph.backends.numba.registry import Inline, Kernel, LowerContext, lookup, register

try:  # lowerings contributed beside the core ones (convolutions, pooling)
    from minigraph.backends.numba import conv as _conv  # noqa: F401
except ImportError:
    pass

__all__ = ["NumbaLinker", "Inline", "Kernel", "LowerContext", "lookup", "register"]
