"""Small helpers shared by the rewrite families: matching elementwise ops and constants."""
from __future__ import annotations

import numpy as np

from minigraph.graph.basic import Constant, Variable
from minigraph.tensor.basic import constant
from minigraph.tensor.elemwise import DimShuffle, Elemwise


def scalar_op(v: Variable):
    """The scalar op if ``v`` is made by an ``Elemwise`` (not in-place), else None."""
    node = v.owner
    if node is not None and isinstance(node.op, Elemwise) and not node.op.inplace:
        return node.op.scalar_op
    return None


def is_elemwise(v: Variable, cls) -> bool:
    """``v`` is made by ``Elemwise`` of a scalar op of class ``cls``."""
    return isinstance(scalar_op(v), cls)


def const_scalar(v: Variable) -> float | int | None:
    """The value if ``v`` is a constant whose elements are all equal (looking through
    dimshuffles), else None."""
    while v.owner is not None and isinstance(v.owner.op, DimShuffle):
        v = v.owner.inputs[0]
    if not isinstance(v, Constant):
        return None
    data = np.asarray(v.data)
    if data.size == 0:
        return None
    first = data.flat[0]
    if data.size > 1 and not np.all(data == first):
        return None
    return first.item()


def const_like(value, dtype: str, ndim: int) -> Constant:
    """A constant of ``dtype`` with ``ndim`` length-1 axes (it broadcasts against anything)."""
    return constant(np.full((1,) * ndim, value, dtype=dtype))


def pad_to(v: Variable, ndim: int) -> Variable:
    """``v`` with length-1 axes prepended up to ``ndim`` dimensions."""
    from minigraph.tensor.elemwise import pad_dims

    return pad_dims(v, ndim)


def is_float(v: Variable) -> bool:
    """``v`` has a float (or complex) dtype."""
    return np.dtype(v.dtype).kind in "fc"


def is_int(v: Variable) -> bool:
    """``v`` has an integer or boolean dtype."""
    return np.dtype(v.dtype).kind in "iub"
