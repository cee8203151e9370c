"""Indexing: basic slicing and integer indices (views), integer-array indexing on several
axes (``logp[T.arange(n), y]``), boolean masks (as the indices where they are true), and the
increments (the gradients of indexing)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigraph.graph.basic import Apply, Op, Variable
from minigraph.graph.type import TensorType, format_shape
from minigraph.tensor import math as M
from minigraph.tensor.basic import as_tensor_variable, build_error, get_constant_value

# An index entry is an int, the marker SYM (an integer scalar given as an input), a slice
# written as ("slice", start, stop, step) whose parts are int, None or SYM, or (advanced
# indexing only) ADV: an integer array given as an input.
SYM = "?"
ADV = "[]"


def _entry_str(e) -> str:
    if isinstance(e, tuple):
        parts = ["" if p is None else str(p) for p in e[1:]]
        return ":".join(parts[:2]) + (f":{parts[2]}" if parts[2] else "")
    return str(e)


def _materialize(idx, values):
    """The Python index for numpy, with symbolic parts taken from ``values`` in order."""
    it = iter(values)
    out = []
    for e in idx:
        if isinstance(e, tuple):
            out.append(slice(*[int(next(it)) if p == SYM else p for p in e[1:]]))
        elif e == SYM:
            out.append(int(next(it)))
        elif e == ADV:
            out.append(next(it))
        else:
            out.append(e)
    return tuple(out)


def _slice_length(s, n):
    if n is None or any(p == SYM for p in s[1:]):
        return None
    return len(range(*slice(*s[1:]).indices(n)))


@dataclass(frozen=True)
class Subtensor(Op):
    """Basic indexing: integers and slices; the result is a view."""

    idx: tuple

    def __str__(self):
        return "subtensor{" + ", ".join(map(_entry_str, self.idx)) + "}"

    def index_for(self, values):
        """The numpy index, with the symbolic entries' run-time ``values``."""
        return _materialize(self.idx, values)

    def make_node(self, x, *sym) -> Apply:
        x = as_tensor_variable(x)
        if len(self.idx) > x.ndim:
            raise build_error(self, [x], f"too many indices ({len(self.idx)}) for {x.ndim} dimensions", IndexError)
        if any(isinstance(e, tuple) and e[3] == 0 for e in self.idx):
            raise build_error(self, [x], "slice step cannot be zero")
        shape = []
        for d, e in enumerate(self.idx):
            n = x.type.shape[d]
            if isinstance(e, tuple):
                shape.append(_slice_length(e, n))
            elif isinstance(e, int) and n is not None and not -n <= e < n:
                raise build_error(self, [x], f"index {e} is out of bounds for axis {d} with length {n}", IndexError)
        shape.extend(x.type.shape[len(self.idx):])
        return Apply(self, [x, *sym], [TensorType(x.dtype, tuple(shape))])

    def perform(self, node, inputs):
        x, *sym = inputs
        try:
            return (np.asarray(x[self.index_for(sym)]),)
        except IndexError as e:
            raise IndexError(f"{self}: {e} (input shape {x.shape})") from None

    def grad(self, inputs, outputs, output_grads):
        x, *sym = inputs
        gx = IncSubtensor(self.idx, False)(M.zeros_like(x), output_grads[0], *sym)
        return [gx] + [None] * len(sym)


def _check_fits(op, x, y, view) -> None:
    """``y`` must broadcast to the indexed ``view`` of ``x`` and convert to its dtype (numpy's
    same-kind rule: no float into an integer tensor)."""
    if y.ndim > view.ndim or any(a is not None and b is not None and a != 1 and a != b
                                 for a, b in zip(reversed(y.type.shape), reversed(view.type.shape))):
        raise build_error(op, [x, y], f"cannot fit {y.type} into {view.type}")
    if not np.can_cast(y.dtype, x.dtype, "same_kind"):
        raise build_error(op, [x, y], f"cannot write {y.dtype} values into a {x.dtype} tensor; cast them first", TypeError)


@dataclass(frozen=True)
class IncSubtensor(Op):
    """A copy of ``x`` with ``y`` added to (or, with ``set``, written into) ``x[idx]``."""

    idx: tuple
    set: bool = False

    def __str__(self):
        kind = "set_subtensor" if self.set else "inc_subtensor"
        return kind + "{" + ", ".join(map(_entry_str, self.idx)) + "}"

    def make_node(self, x, y, *sym) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        view = Subtensor(self.idx).make_node(x, *sym).outputs[0]
        _check_fits(self, x, y, view)
        return Apply(self, [x, y, *sym], [x.type])

    def perform(self, node, inputs):
        x, y, *sym = inputs
        out = x.copy()
        idx = _materialize(self.idx, sym)
        if self.set:
            out[idx] = y
        else:
            out[idx] += y
        return (out,)

    def grad(self, inputs, outputs, output_grads):
        x, y, *sym = inputs
        (g,) = output_grads
        gx = IncSubtensor(self.idx, True)(g, M.zeros_like(y), *sym) if self.set else g
        from minigraph.gradient import unbroadcast

        gy = unbroadcast(Subtensor(self.idx)(g, *sym), y)
        return [gx, gy] + [None] * len(sym)


def _adv_shape(x, idx, arrays):
    """numpy's shape of ``x[idx]`` with advanced indices: the broadcast index shape goes where
    the advanced indices are if they are adjacent, else first."""
    ishapes = [a.type.shape for a in arrays]
    nd = max(len(s) for s in ishapes)
    bshape = []
    for d in range(nd):
        lengths = [s[d - (nd - len(s))] for s in ishapes if d - (nd - len(s)) >= 0]
        known = {n for n in lengths if n is not None and n != 1}
        if len(known) > 1:
            shapes = ", ".join(format_shape(s) for s in ishapes)
            raise ValueError(f"index arrays of shapes {shapes} cannot be broadcast together")
        bshape.append(known.pop() if len(known) == 1 else (1 if all(n == 1 for n in lengths) else None))
    positions = [d for d, e in enumerate(idx) if e == ADV]
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    rest = []
    for d, e in enumerate(idx):
        if isinstance(e, tuple):
            rest.append(_slice_length(e, x.type.shape[d]))
    rest_tail = list(x.type.shape[len(idx):])
    if adjacent:
        before = sum(1 for e in idx[: positions[0]] if isinstance(e, tuple))
        return tuple(rest[:before] + bshape + rest[before:] + rest_tail)
    return tuple(bshape + rest + rest_tail)


@dataclass(frozen=True)
class AdvancedSubtensor(Op):
    """Integer-array indexing (numpy's advanced indexing), with constant slices between."""

    idx: tuple

    def __str__(self):
        return "advanced_subtensor{" + ", ".join(map(_entry_str, self.idx)) + "}"

    def make_node(self, x, *arrays) -> Apply:
        x = as_tensor_variable(x)
        arrays = [as_tensor_variable(a) for a in arrays]
        if len(self.idx) > x.ndim:
            raise build_error(self, [x, *arrays], f"too many indices ({len(self.idx)}) for {x.ndim} dimensions", IndexError)
        if any(isinstance(e, tuple) and e[3] == 0 for e in self.idx):
            raise build_error(self, [x, *arrays], "slice step cannot be zero")
        for a in arrays:
            if np.dtype(a.dtype).kind not in "iu":
                raise build_error(self, [x, *arrays], f"index arrays must be integers, got {a.type}", TypeError)
        try:
            shape = _adv_shape(x, self.idx, arrays)
        except ValueError as e:
            raise build_error(self, [x, *arrays], str(e)) from None
        return Apply(self, [x, *arrays], [TensorType(x.dtype, shape)])

    def perform(self, node, inputs):
        x, *arrays = inputs
        try:
            return (np.asarray(x[_materialize(self.idx, arrays)]),)
        except IndexError as e:
            raise IndexError(f"{self}: {e} (input shape {x.shape})") from None

    def grad(self, inputs, outputs, output_grads):
        x, *arrays = inputs
        gx = AdvancedIncSubtensor(self.idx, False)(M.zeros_like(x), output_grads[0], *arrays)
        return [gx] + [None] * len(arrays)


@dataclass(frozen=True)
class AdvancedIncSubtensor(Op):
    """A copy of ``x`` with ``y`` added at integer-array indices (repeats accumulate)."""

    idx: tuple
    set: bool = False

    def __str__(self):
        kind = "advanced_set_subtensor" if self.set else "advanced_inc_subtensor"
        return kind + "{" + ", ".join(map(_entry_str, self.idx)) + "}"

    def make_node(self, x, y, *arrays) -> Apply:
        x, y = as_tensor_variable(x), as_tensor_variable(y)
        arrays = [as_tensor_variable(a) for a in arrays]
        view = AdvancedSubtensor(self.idx).make_node(x, *arrays).outputs[0]
        _check_fits(self, x, y, view)
        return Apply(self, [x, y, *arrays], [x.type])

    def perform(self, node, inputs):
        x, y, *arrays = inputs
        out = x.copy()
        idx = _materialize(self.idx, arrays)
        try:
            if self.set:
                out[idx] = y
            else:
                np.add.at(out, idx, y)
        except IndexError as e:
            raise IndexError(f"{self}: {e} (input shape {x.shape})") from None
        return (out,)

    def grad(self, inputs, outputs, output_grads):
        x, y, *arrays = inputs
        (g,) = output_grads
        from minigraph.gradient import unbroadcast

        gx = AdvancedIncSubtensor(self.idx, True)(g, M.zeros_like(y), *arrays) if self.set else g
        gy = unbroadcast(AdvancedSubtensor(self.idx)(g, *arrays), y)
        return [gx, gy] + [None] * len(arrays)


@dataclass(frozen=True)
class Nonzero(Op):
    """The indices where a boolean array is true, one int64 vector per axis (numpy's
    ``nonzero``): ``x[mask]`` is ``x[nonzero(mask)]``."""

    def make_node(self, mask) -> Apply:
        mask = as_tensor_variable(mask)
        if mask.dtype != "bool" or mask.ndim == 0:
            raise build_error(self, [mask], f"takes a boolean array, got {mask.type}", TypeError)
        return Apply(self, [mask], [TensorType("int64", (None,)) for _ in range(mask.ndim)])

    def perform(self, node, inputs):
        return tuple(np.asarray(a, dtype=np.int64) for a in np.nonzero(inputs[0]))

    def grad(self, inputs, outputs, output_grads):
        return [None]


def nonzero(mask) -> tuple:
    """The indices where ``mask`` is true, one int64 vector per axis."""
    outs = Nonzero()(mask)
    return tuple(outs) if isinstance(outs, (list, tuple)) else (outs,)


# --- the user-facing entry points --------------------------------------------------------

def _is_int_scalar_like(e) -> bool:
    if isinstance(e, (int, np.integer)) and not isinstance(e, bool):
        return True
    return isinstance(e, Variable) and e.ndim == 0 and np.dtype(e.dtype).kind in "iu"


def _split_index(x, index):
    """(spec, inputs, advanced?) for ``x[index]``."""
    if not isinstance(index, tuple):
        index = (index,)
    # identity tests: ``in`` would compare numpy index arrays elementwise
    ellipses = [k for k, e in enumerate(index) if e is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if ellipses:
        i = ellipses[0]
        fill = x.ndim - (len(index) - 1)
        index = index[:i] + (slice(None),) * fill + index[i + 1:]
    advanced = any(
        isinstance(e, (list, np.ndarray)) or (isinstance(e, Variable) and e.ndim > 0) for e in index
    )
    spec, inputs = [], []
    for e in index:
        if isinstance(e, slice):
            parts = []
            for p in (e.start, e.stop, e.step):
                if p is None or isinstance(p, (int, np.integer)):
                    parts.append(None if p is None else int(p))
                else:
                    c = get_constant_value(as_tensor_variable(p))
                    if c is not None:
                        parts.append(int(c))
                    else:
                        if advanced:
                            raise IndexError("symbolic slice bounds cannot be mixed with integer-array indices")
                        parts.append(SYM)
                        inputs.append(M.cast(as_tensor_variable(p), "int64"))
            spec.append(("slice", *parts))
        elif advanced:
            a = as_tensor_variable(np.asarray(e) if isinstance(e, list) else e)
            spec.append(ADV)
            inputs.append(a)
        elif isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            spec.append(int(e))
        elif _is_int_scalar_like(e):
            c = get_constant_value(e)
            if c is not None:
                spec.append(int(c))
            else:
                spec.append(SYM)
                inputs.append(M.cast(e, "int64"))
        else:
            raise IndexError(f"unsupported index {e!r}: use integers, slices or integer arrays")
    return tuple(spec), inputs, advanced


def getitem(x, index):
    """``x[index]``: basic slicing and integers give views; integer arrays gather; a boolean
    mask selects where it is true; ``None`` (``np.newaxis``) inserts a length-1 axis."""
    if not isinstance(index, tuple):
        index = (index,)
    if any(_is_mask(e) for e in index):
        return getitem(x, _masks_to_indices(x, index))
    if any(e is None for e in index):
        return _getitem_newaxis(x, index)
    spec, inputs, advanced = _split_index(x, index)
    if advanced:
        return AdvancedSubtensor(spec)(x, *inputs)
    if all(e == ("slice", None, None, None) for e in spec):
        return x
    return Subtensor(spec)(x, *inputs)


def _is_mask(e) -> bool:
    if isinstance(e, (list, np.ndarray)):
        return np.asarray(e).dtype == bool and np.ndim(e) > 0
    return isinstance(e, Variable) and e.dtype == "bool" and e.ndim > 0


def _masks_to_indices(x, index):
    """``index`` with each boolean mask replaced by the integer indices where it is true; a
    mask covering axes d.. of ``x`` must have exactly their lengths (checked when it runs)."""
    from minigraph.tensor.shape_ops import shape_i, specify_shape

    if any(e is None for e in index):
        raise IndexError("None / np.newaxis cannot be mixed with boolean masks; use x.dimshuffle")
    ndims = [(np.ndim(e) if isinstance(e, (list, np.ndarray)) else e.ndim) if _is_mask(e) else 1
             for e in index if e is not Ellipsis]  # axes each entry indexes
    if sum(ndims) > x.ndim:
        raise IndexError(f"too many indices for a tensor of {x.ndim} dimensions")
    out, d = [], 0
    for e in index:
        if e is Ellipsis:
            out.append(e)
            d += x.ndim - sum(ndims)
        elif _is_mask(e):
            mask = as_tensor_variable(np.asarray(e) if isinstance(e, list) else e)
            mask = specify_shape(mask, *[shape_i(x, d + j) for j in range(mask.ndim)])
            out.extend(nonzero(mask))
            d += mask.ndim
        else:
            out.append(e)
            d += 1
    return tuple(out)


def _getitem_newaxis(x, index):
    """``x[index]`` with ``None`` entries: the index without them, then a dimshuffle that puts
    a length-1 axis where each ``None`` stood among the result's axes (numpy's rule)."""
    from minigraph.tensor.shape_ops import dimshuffle

    rest = tuple(e for e in index if e is not None)
    if any(isinstance(e, (list, np.ndarray)) or (isinstance(e, Variable) and e.ndim > 0) for e in rest):
        raise IndexError("None / np.newaxis cannot be mixed with integer-array indices; use x.dimshuffle")
    ellipses = [k for k, e in enumerate(index) if e is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = len(rest) - len(ellipses)
    if consumed > x.ndim:
        raise IndexError(f"too many indices for a tensor of {x.ndim} dimensions")
    new_axes, out = [], 0  # positions of the inserted axes among the result's axes
    for e in index:
        if e is None:
            new_axes.append(out)
            out += 1
        elif e is Ellipsis:
            out += x.ndim - consumed
        elif isinstance(e, slice):
            out += 1
    out += x.ndim - consumed if not ellipses else 0  # axes left unindexed at the end
    r = getitem(x, rest) if rest else x
    axes = iter(range(r.ndim))
    return dimshuffle(r, ["x" if k in new_axes else next(axes) for k in range(out)])


def _inc(x, y, set_):
    x = as_tensor_variable(x)
    view = x.owner
    if view is None or not isinstance(view.op, (Subtensor, AdvancedSubtensor)):
        raise TypeError("set_subtensor / inc_subtensor take an indexed tensor, e.g. x[2:5]")
    base, *inputs = view.inputs
    y = M.cast(as_tensor_variable(y), base.dtype) if not isinstance(y, Variable) else y
    cls = IncSubtensor if isinstance(view.op, Subtensor) else AdvancedIncSubtensor
    return cls(view.op.idx, set_)(base, y, *inputs)


def set_subtensor(x, y):
    """A copy of the tensor indexed by ``x`` with ``y`` written at that index."""
    return _inc(x, y, True)


def inc_subtensor(x, y):
    """A copy of the tensor indexed by ``x`` with ``y`` added at that index."""
    return _inc(x, y, False)
