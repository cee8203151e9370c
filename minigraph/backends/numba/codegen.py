"""Source generation for the loop kernels: fused elementwise, fused reductions, row-wise softmax.

Kernels use generic parameter names (``i0``, ``b0``, ``o0``) and no user strings, so two nodes
doing the same computation on the same kinds of arrays share one compiled kernel; the driver
names the graph's variables.
"""
from __future__ import annotations

import keyword

import numpy as np

from minigraph.backends.numba.scalar import dtype_ctor, literal, program_lines
from minigraph.tensor import elemwise as E

_IND = "    "


def tuple_expr(items: list[str]) -> str:
    """``(a, b)``, ``(a,)`` or ``()``: a tuple display of ``items``."""
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _index(d_idx: list[str]) -> str:
    return ", ".join(d_idx) if d_idx else "()"


def _lengths(shapes: list[tuple], ndim: int) -> tuple[list[str], list[str]]:
    """Statements reading each loop length from the first input not broadcast (static length 1)
    on that axis, and checks that the other inputs agree (a mismatch, e.g. a length 1 known
    only at run time, raises; the driver then reruns the call on the reference interpreter)."""
    lines, checks = [], []
    for d in range(ndim):
        src = [k for k, s in enumerate(shapes) if s[d] != 1]
        if not src:
            lines.append(f"n{d} = 1")
            continue
        lines.append(f"n{d} = i{src[0]}.shape[{d}]")
        for k in src[1:]:
            checks.append(f"i{k}.shape[{d}] != n{d}")
    return lines, checks


def _load(k: int, shape: tuple, idx: list[str]) -> str:
    if not shape:
        return f"i{k}[()]"
    return f"i{k}[{', '.join('0' if s == 1 else j for s, j in zip(shape, idx))}]"


def elemwise_source(scalar_op, in_types, out_types, in_place: dict | None = None) -> str:
    """One loop nest computing ``scalar_op`` elementwise (numpy broadcasting on static length-1
    axes), the outermost loop parallel (prange).

    ``in_place`` maps outputs to the inputs they overwrite: those are written through the
    input's own name, so that the compiler sees one array read and written at the same index
    (through two names, its check that the arrays do not overlap fails, and the loop runs
    without vector instructions, several times slower)."""
    in_place = in_place or {}
    ndim = len(out_types[0].shape)
    shapes = [t.shape for t in in_types]
    nin, nout = len(in_types), len(out_types)
    params = ["nt"] + [f"i{k}" for k in range(nin)] + [f"b{k}" for k in range(nout)]
    lines = [f"def kernel({', '.join(params)}):", f"{_IND}# {scalar_op.name}"]
    length_lines, checks = _lengths(shapes, ndim)
    lines += [_IND + s for s in length_lines]
    if checks:
        lines.append(f"{_IND}if {' or '.join(checks)}:")
        lines.append(f"{_IND}{_IND}raise ValueError('elemwise: input shapes do not match')")
    shape_t = tuple_expr([f"n{d}" for d in range(ndim)])
    for k in range(nout):
        if k in in_place:
            lines.append(f"{_IND}o{k} = i{in_place[k]}  # in place")
        else:
            lines.append(f"{_IND}o{k} = reuse(b{k}, {shape_t})")
    idx = [f"j{d}" for d in range(ndim)]
    depth = 1
    for d in range(ndim):
        rng = "prange" if d == 0 else "range"
        lines.append(f"{_IND * depth}for j{d} in {rng}(n{d}):")
        depth += 1
    loads = [_load(k, s, idx) for k, s in enumerate(shapes)]
    body, outs, _ = program_lines(scalar_op, loads, [t.dtype for t in in_types])
    lines += [_IND * depth + s for s in body]
    for k, name in enumerate(outs):
        target = f"i{in_place[k]}" if k in in_place else f"o{k}"
        lines.append(f"{_IND * depth}{target}[{_index(idx)}] = {name}")
    lines.append(f"{_IND}return {tuple_expr([f'o{k}' for k in range(nout)])}")
    return "\n".join(lines) + "\n"


_INIT = {"add": 0, "mul": 1}


def _acc_dtype(kind: str, dtype: str) -> str:
    # float32 (and float16) sums and products accumulate in float64: the result is then
    # rounded once instead of at every step
    if kind in ("add", "mul") and np.dtype(dtype).kind == "f":
        return "float64"
    return dtype


#: rows whose float32 sums add up in float32 before they join the float64 accumulators, when
#: axis 0 is summed into an array: float64 arithmetic on every element takes twice the
#: instructions (half the vector width, a conversion each), and a run of 64 rows errs by at
#: most 64 units in the last place of its terms' magnitude, where numpy's float32 sum over
#: axis 0 errs by up to one per row
ROW_RUN = 64


def _init_value(kind: str, dtype: str) -> str:
    if kind in _INIT:
        return literal(_INIT[kind], dtype)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return literal(-np.inf if kind == "max" else np.inf, dtype)
    if dt.kind == "b":
        return literal(kind == "min", dtype)
    info = np.iinfo(dt)
    return literal(info.min if kind == "max" else info.max, dtype)


def _combine(kind: str, acc: str, value: str) -> str:
    if kind == "add":
        return f"{acc} += {value}"
    if kind == "mul":
        return f"{acc} *= {value}"
    return f"{acc} = {'maximum' if kind == 'max' else 'minimum'}({acc}, {value})"


def reduce_source(scalar_op, axis: tuple, kinds: tuple, in_types, out_types) -> str:
    """Reductions over ``axis`` of the outputs of ``scalar_op`` (None: the input itself), all in
    one pass over the inputs, without temporaries.

    Loops run in memory order.  When axis 0 is reduced the rows are split into ``nt`` blocks
    reduced in parallel into per-block partial results, added up at the end; otherwise the
    outermost loop is parallel.  Trailing reduced axes accumulate in scalars (vectorized
    with reassociation, ``fastmath``); float32 sums over axis 0 into arrays add up runs of
    ``ROW_RUN`` rows in float32 before float64.
    """
    ndim = len(in_types[0].shape)
    shapes = [t.shape for t in in_types]
    nin, nout = len(in_types), len(out_types)
    kept = [d for d in range(ndim) if d not in axis]
    params = ["nt"] + [f"i{k}" for k in range(nin)] + [f"b{k}" for k in range(nout)]
    label = scalar_op.name if scalar_op is not None else "identity"
    lines = [f"def kernel({', '.join(params)}):",
             f"{_IND}# {', '.join(kinds)} over axes {tuple(axis)} of {label}"]
    length_lines, checks = _lengths(shapes, ndim)
    lines += [_IND + s for s in length_lines]
    if checks:
        lines.append(f"{_IND}if {' or '.join(checks)}:")
        lines.append(f"{_IND}{_IND}raise ValueError('reduction: input shapes do not match')")
    if any(k in ("max", "min") for k in kinds) and axis:
        size = " * ".join(f"n{d}" for d in axis)
        lines.append(f"{_IND}if {size} == 0:")
        lines.append(f"{_IND}{_IND}raise ValueError('zero-size array to a reduction without identity')")
    blocked = ndim > 0 and 0 in axis
    if blocked:
        lines.append(f"{_IND}nb = max(1, min(nt, n0))  # row blocks reduced in parallel")
    else:
        lines.append(f"{_IND}nb = 1")
    acc_dts = [_acc_dtype(k, t.dtype) for k, t in zip(kinds, out_types)]
    acc_shape = tuple_expr(["nb"] + [f"n{d}" for d in kept])
    for m, (kind, adt) in enumerate(zip(kinds, acc_dts)):
        lines.append(f"{_IND}a{m} = np.empty({acc_shape}, np.{np.dtype(adt).name})")
        lines.append(f"{_IND}a{m}[:] = {_init_value(kind, adt)}")
    # loops; the trailing run of reduced axes accumulates in scalars s0, s1...
    tail = ndim
    while tail > 0 and (tail - 1) in axis:
        tail -= 1
    use_scalars = tail < ndim
    idx = [f"j{d}" for d in range(ndim)]
    acc_idx = ", ".join(["blk"] + [f"j{d}" for d in kept])
    depth, init_depth = 1, None

    def init_scalars():
        for m, (kind, adt) in enumerate(zip(kinds, acc_dts)):
            lines.append(f"{_IND * depth}s{m} = {_init_value(kind, adt)}")

    # sums over axis 0 into arrays: float32 runs of rows (see ROW_RUN) in p0, p1...
    runs = (blocked and not use_scalars and all(k == "add" for k in kinds)
            and all(adt != t.dtype for adt, t in zip(acc_dts, out_types)))
    kept_idx = [f"k{d}" for d in kept]

    def row_values(row: str, prefix: str) -> list[str]:
        """Statements computing the values reduced at row ``row`` (of axis 0); their names."""
        loads = [_load(k, s, [row] + idx[1:]) for k, s in enumerate(shapes)]
        if scalar_op is None:
            return loads
        body, values, _ = program_lines(scalar_op, loads, [t.dtype for t in in_types], prefix=prefix)
        lines.extend(_IND * depth + s for s in body)
        return values

    if runs:
        # blocks of rows, each in runs of ROW_RUN rows summed in float32 into p0, p1..., two
        # rows a step (the partial sums are loaded and stored once per pair); a run's odd last
        # row pairs with itself and its second values are left out, so the loop body is
        # written twice, not three times
        I = _IND * 2
        p_shape = tuple_expr([f"n{d}" for d in kept])
        lines += [f"{_IND}for blk in prange(nb):"]
        lines += [f"{I}p{m} = np.empty({p_shape}, np.{np.dtype(t.dtype).name})" for m, t in enumerate(out_types)]
        lines += [f"{I}lo = blk * n0 // nb", f"{I}hi = (blk + 1) * n0 // nb",
                  f"{I}for r in range(lo, hi, {ROW_RUN}):  # a run of rows, summed in float32"]
        lines += [f"{I}{_IND}p{m}[:] = 0" for m in range(nout)]
        lines.append(f"{I}{_IND}e = min(r + {ROW_RUN}, hi)")
        lines += [f"{I}{_IND}for j0 in range(r, e, 2):  # two rows a step",
                  f"{I}{_IND * 2}j0b = min(j0 + 1, e - 1)",
                  f"{I}{_IND * 2}pair = j0 + 1 < e  # else j0 is the run's odd last row: counted once"]
        depth = 4
        for d in kept:
            lines.append(f"{_IND * depth}for j{d} in range(n{d}):")
            depth += 1
        p_idx = _index([f"j{d}" for d in kept])
        for m, (a, b) in enumerate(zip(row_values("j0", "t"), row_values("j0b", "u"))):
            zero = f"{dtype_ctor(out_types[m].dtype)}(0)"
            lines.append(f"{_IND * depth}p{m}[{p_idx}] += {a} + ({b} if pair else {zero})")
        depth = 3  # the run joins the float64 sums
        for d in kept:
            lines.append(f"{_IND * depth}for k{d} in range(n{d}):")
            depth += 1
        for m in range(nout):
            lines.append(f"{_IND * depth}a{m}[{', '.join(['blk'] + kept_idx)}] += np.float64(p{m}[{_index(kept_idx)}])")
    else:
        if blocked:
            lines.append(f"{_IND}for blk in prange(nb):")
            depth += 1
            if use_scalars and tail == 0:
                init_depth = depth
                init_scalars()
            lines.append(f"{_IND * depth}for j0 in range(blk * n0 // nb, (blk + 1) * n0 // nb):")
            depth += 1
            start = 1
        else:
            lines.append(f"{_IND}blk = 0")
            start = 0
        for d in range(start, ndim):
            if use_scalars and d == tail:
                init_depth = depth
                init_scalars()
            rng = "prange" if (d == 0 and not blocked) else "range"
            lines.append(f"{_IND * depth}for j{d} in {rng}(n{d}):")
            depth += 1
        values = row_values("j0", "t")
        for m, (kind, adt) in enumerate(zip(kinds, acc_dts)):
            v = f"{dtype_ctor(adt)}({values[m]})"
            target = f"s{m}" if use_scalars else f"a{m}[{acc_idx}]"
            lines.append(f"{_IND * depth}{_combine(kind, target, v)}")
    if use_scalars:
        for m, kind in enumerate(kinds):
            lines.append(f"{_IND * init_depth}{_combine(kind, f'a{m}[{acc_idx}]', f's{m}')}")
    # combine the blocks and write the outputs in their dtypes
    out_shape = tuple_expr([f"n{d}" for d in kept])
    for m in range(nout):
        lines.append(f"{_IND}o{m} = reuse(b{m}, {out_shape})")
    depth = 1
    kidx = [f"k{d}" for d in kept]
    for d in kept:
        lines.append(f"{_IND * depth}for k{d} in range(n{d}):")
        depth += 1
    for m, (kind, t) in enumerate(zip(kinds, out_types)):
        aidx = ", ".join(["0"] + kidx)
        lines.append(f"{_IND * depth}r{m} = a{m}[{aidx}]")
        lines.append(f"{_IND * depth}for q in range(1, nb):")
        bidx = ", ".join(["q"] + kidx)
        lines.append(f"{_IND * (depth + 1)}{_combine(kind, f'r{m}', f'a{m}[{bidx}]')}")
        lines.append(f"{_IND * depth}o{m}[{_index(kidx)}] = {dtype_ctor(t.dtype)}(r{m})")
    lines.append(f"{_IND}return {tuple_expr([f'o{k}' for k in range(nout)])}")
    return "\n".join(lines) + "\n"


def softmax_source(ndim: int, dtype: str, log: bool) -> str:
    """Row-wise (last axis) softmax or log-softmax: max, then exp and sum, then scale; the
    outermost loop parallel."""
    lines = ["def kernel(nt, i0, b0):",
             f"{_IND}# {'log_softmax' if log else 'softmax'} over the last axis",
             f"{_IND}o0 = reuse(b0, i0.shape)",
             f"{_IND}n = i0.shape[{ndim - 1}]"]
    depth = 1
    lead = [f"j{d}" for d in range(ndim - 1)]
    for d in range(ndim - 1):
        lines.append(f"{_IND * depth}for j{d} in {'prange' if d == 0 else 'range'}(i0.shape[{d}]):")
        depth += 1
    pre = "".join(f"{j}, " for j in lead)
    I = _IND * depth
    one = literal(1, dtype)
    lines += [f"{I}m = {literal(-np.inf, dtype)}",
              f"{I}for k in range(n):",
              f"{I}{_IND}m = maximum(m, i0[{pre}k])",
              f"{I}s = np.float64(0.0)  # the sum of exponentials accumulates in float64",
              f"{I}for k in range(n):"]
    if log:
        lines += [f"{I}{_IND}s += np.exp(i0[{pre}k] - m)",
                  f"{I}ls = {dtype_ctor(dtype)}(np.log(s))",
                  f"{I}for k in range(n):",
                  f"{I}{_IND}o0[{pre}k] = i0[{pre}k] - m - ls"]
    else:
        lines += [f"{I}{_IND}e = np.exp(i0[{pre}k] - m)",
                  f"{I}{_IND}o0[{pre}k] = e",
                  f"{I}{_IND}s += e",
                  f"{I}inv = {one} / {dtype_ctor(dtype)}(s)",
                  f"{I}for k in range(n):",
                  f"{I}{_IND}o0[{pre}k] *= inv"]
    lines.append(f"{_IND}return (o0,)")
    return "\n".join(lines) + "\n"


def crossentropy_source(dtype: str) -> str:
    """Row-wise softmax cross-entropy of integer labels: logsumexp(x[i]) - x[i, y[i]] (the max
    subtracted first); labels out of range raise (the reference then names the node)."""
    I = _IND * 2
    return "\n".join([
        "def kernel(nt, i0, i1, b0):",
        f"{_IND}# -log_softmax(x)[i, y[i]] for each row i",
        f"{_IND}n0 = i0.shape[0]",
        f"{_IND}n1 = i0.shape[1]",
        f"{_IND}if i1.shape[0] != n0:",
        f"{_IND}{_IND}raise ValueError('softmax_cross_entropy: labels and logits differ in length')",
        f"{_IND}o0 = reuse(b0, (n0,))",
        f"{_IND}for j0 in prange(n0):",
        f"{I}label = i1[j0]",
        f"{I}if label < 0:  # counts from the end, as numpy indexing (the unfused graph) does",
        f"{I}{_IND}label += n1",
        f"{I}if label < 0 or label >= n1:",
        f"{I}{_IND}raise IndexError('softmax_cross_entropy: label out of range')",
        f"{I}m = {literal(-np.inf, dtype)}",
        f"{I}for k in range(n1):",
        f"{I}{_IND}m = maximum(m, i0[j0, k])",
        f"{I}s = np.float64(0.0)  # the sum of exponentials accumulates in float64",
        f"{I}for k in range(n1):",
        f"{I}{_IND}s += np.exp(i0[j0, k] - m)",
        f"{I}o0[j0] = {dtype_ctor(dtype)}(m + {dtype_ctor(dtype)}(np.log(s)) - i0[j0, label])",
        f"{_IND}return (o0,)",
    ]) + "\n"


def broadcast_shape_exprs(shapes: list[tuple], ndim: int, keep=None) -> str:
    """A driver expression of the loop lengths (``({i0}.shape[0], 1)``), over the axes in
    ``keep`` (all by default): the same choice of input per axis as the kernel makes."""
    parts = []
    for d in range(ndim):
        if keep is not None and d not in keep:
            continue
        src = [k for k, s in enumerate(shapes) if s[d] != 1]
        parts.append(f"{{i{src[0]}}}.shape[{d}]" if src else "1")
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def vector_source(scalar_op, n_in: int, out_dtypes) -> tuple[str, dict]:
    """A plain Python function applying ``scalar_op`` with numpy, one ufunc call per step of
    its program: the reference interpreter's arithmetic without its per-node overhead (for
    the small per-feature vectors of batch statistics and parameters).  Returns the source
    and the names it uses (each step's numpy implementation)."""
    nout = len(out_dtypes)
    steps = scalar_op.program if isinstance(scalar_op, E.Composite) else ((scalar_op, tuple(range(n_in))),)
    outs = scalar_op.outputs if isinstance(scalar_op, E.Composite) else tuple(range(n_in, n_in + nout))
    names: dict = {}
    by_op: dict = {}

    counts: dict[str, int] = {}

    def name_of(op):
        if op not in by_op:
            base = type(op).__name__.lower()
            if keyword.iskeyword(base) or base == "np":  # And, Or, Not: not names in Python
                base += "_op"
            k = counts[base] = counts.get(base, -1) + 1
            by_op[op] = base if k == 0 else f"{base}_{k}"
            names[by_op[op]] = op.impl
        return by_op[op]

    slots = [f"i{k}" for k in range(n_in)]
    lines = [f"def vector({', '.join(slots)}):", f"{_IND}# {scalar_op.name}"]
    for op, args in steps:
        slots.append(f"t{len(slots)}")
        lines.append(f"{_IND}{slots[-1]} = {name_of(op)}({', '.join(slots[a] for a in args)})")
    if not isinstance(scalar_op, E.Composite) and nout > 1:  # one step, several results
        lines[-1] = f"{_IND}{', '.join(f't{n_in + j}' for j in range(nout))} = " + lines[-1].split(" = ", 1)[1]
        slots += [f"t{n_in + j}" for j in range(1, nout)]
    results = [f"np.asarray({slots[o]}, np.{np.dtype(dt).name})" for o, dt in zip(outs, out_dtypes)]
    lines.append(f"{_IND}return {results[0] if len(results) == 1 else tuple_expr(results)}")
    return "\n".join(lines) + "\n", names
