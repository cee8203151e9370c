"""The lowering registry: how each op class becomes code in the Numba backend.

A lowering is a function ``lower(node, ctx) -> Kernel | Inline`` registered for an op class
with ``@register(OpClass)``; lookup walks the class's MRO, so a lowering for a base class
covers its subclasses.  The core never imports numba: only this package does.

``Kernel``: a loop nest compiled with ``numba.njit``.  ``source`` defines ``def kernel(...)``
taking (after ``nt``, the thread count, when ``parallel``) the node's inputs (arrays; scalars
are 0-d arrays) in order, then one buffer per output, and returning a tuple of the outputs
with exactly their declared dtypes.  A buffer is the array this output had on the previous
call (or an empty one): ``reuse(buf, shape)`` (from ``helpers``) returns it when the shape
still fits, so intermediates are not allocated on every call.  The source may use ``np``,
``prange`` and the helpers in ``helpers.py`` (``sigmoid``, ``softplus``, ``maximum``, ``minimum``,
``tanh32``, ``reuse``); it must not contain user-given strings (names): only op parameters.

``Inline``: a Python expression in the driver (views, BLAS calls through numpy, small
shape arithmetic), formatted with ``{i0}, {i1}, ...`` (input names) and ``{b0}, ...``
(output buffers, when ``buffers``); ``ctx.ref(obj)`` makes any Python object reachable from
the expression by a name.  It evaluates to the output (a tuple when the node has several).
Where the same work can run in compiled code, ``jit`` gives it as an expression numba
compiles (only ``np``, the helpers and the inputs' names), or ``kernel`` as a loop: a function
whose every node has one may run its whole driver compiled (see ``linker``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from minigraph.graph.basic import Apply

#: op class -> lowering function
LOWERINGS: dict[type, Callable] = {}


def register(*op_classes: type):
    """Decorator: ``@register(Conv2d)`` makes the function the lowering of those op classes."""
    def decorate(fn):
        for cls in op_classes:
            LOWERINGS[cls] = fn
        return fn

    return decorate


def lookup(op) -> Callable | None:
    """The lowering of ``op`` (by class, walking the MRO), or None."""
    for cls in type(op).__mro__:
        fn = LOWERINGS.get(cls)
        if fn is not None:
            return fn
    return None


@dataclass
class Kernel:
    """A compiled loop nest (see the module docstring for its calling convention)."""

    source: str
    kind: str = "loop"
    #: the source uses ``prange``; a parallel variant runs when ``work`` exceeds the threshold
    parallel: bool = False
    #: driver expression measuring the work (input names as in Inline)
    work: str = "{i0}.size"
    #: allow reassociation (vectorized reductions); results differ from numpy in rounding only
    fastmath: bool = False
    #: how many passes over memory the kernel makes (for printing)
    passes: int | None = None
    #: driver expressions of each output's shape (input names as in Inline); when given, an
    #: output returned to the user is allocated by numpy before the call (numpy asks the OS
    #: for huge pages: far fewer page faults than an allocation inside compiled code)
    out_shapes: list | None = None
    #: the source with outputs written over inputs, given {output index: input index}, for
    #: kernels that can (elementwise loops); None: the outputs always get buffers of their own
    in_place: Callable[[dict], str] | None = None


@dataclass
class Inline:
    """A driver expression (see the module docstring)."""

    expr: str
    kind: str = "view"
    buffers: bool = False
    #: the Python source of the function the expression calls, when generated (for printing)
    source: str | None = None
    #: the expression as the compiled driver writes it (numba), when there is one
    jit: str | None = None
    #: or a loop doing the same work, which the compiled driver calls instead (or a function
    #: making that loop: it is generated only when a compiled driver is built)
    kernel: Kernel | Callable[[], Kernel] | None = None


@dataclass
class LowerContext:
    """What a lowering may ask of the linker."""

    refs: dict = field(default_factory=dict)

    def ref(self, obj) -> str:
        """A driver-level name bound to ``obj`` (an op, a helper function, a constant)."""
        for name, value in self.refs.items():
            if value is obj:
                return name
        name = f"R{len(self.refs)}"
        self.refs[name] = obj
        return name


def lower(node: Apply, ctx: LowerContext):
    """The lowering of ``node``, or None when its op has none (the linker falls back to perform)."""
    fn = lookup(node.op)
    return None if fn is None else fn(node, ctx)
