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


def centered_sums_source(terms: tuple, n_in: int, dtype: str) -> str:
    """``CenteredSums``: sum(x) over axis 0 and the ``terms`` centered on mean = sum(x) / n,
    without a second pass over x through memory.  Two functions:

    ``kernel`` (serial: small inputs, which stay in cache) sums x, then the terms about the
    mean itself, each in runs of ``ROW_RUN`` rows as ``reduce_source`` sums.

    ``kernel_parallel`` (large inputs, blocks of rows in parallel) reads each run of rows
    twice while it is in cache: its sum (in float64) gives the run's mean c, then the terms
    are summed in the inputs' dtype about c, where they are small and add up accurately.  Each
    block moves its runs' sums to its first run's mean c0, in float64, and the end moves the
    blocks' sums to the mean m.  The moves are exact: sum((x - m)^2) = sum((x - c)^2) +
    2 (c - m) sum(x - c) + n (c - m)^2 and sum(g (x - m)) = sum(g (x - c)) + (c - m) sum(g),
    with sum(x - c) = sum(x) - n c.
    """
    I, B, R = _IND, _IND * 2, _IND * 3
    ctor, np_dt, zero = dtype_ctor(dtype), f"np.{np.dtype(dtype).name}", f"{dtype_ctor(dtype)}(0)"
    sq = any(kind == "sq" for kind, _ in terms)
    cross = sorted({k for kind, k in terms if kind == "cross"})
    sums = sorted({k for kind, k in terms if kind != "sq" and k} | set(cross))
    nout = 1 + len(terms)
    # a run's terms about its center c, one row each of ``part`` (in the inputs' dtype)
    parts = (["q2"] if sq else []) + [f"r{k}" for k in cross] + [f"s{k}" for k in sums]
    part = {name: f"part[{j}, {{}}]" for j, name in enumerate(parts)}

    def two_rows(depth: str, last: str, what: str, body: list[str]) -> list[str]:
        """The rows of a run, r to ``last``, two a step (the odd last row pairs with itself and
        its second values are left out, as in ``reduce_source``)."""
        return [f"{depth}for j0 in range(r, {last}, 2):  # {what}",
                f"{depth}{I}j0b = min(j0 + 1, {last} - 1)",
                f"{depth}{I}pair = j0 + 1 < {last}  # else j0 is the odd last row: counted once",
                f"{depth}{I}for j1 in range(n1):"] + [depth + I * 2 + line for line in body]

    terms_body = [f"d = {ctor}(i0[j0, j1] - c[j1])", f"db = {ctor}(i0[j0b, j1] - c[j1]) if pair else {zero}"]
    if sq:
        terms_body.append(f"{part['q2'].format('j1')} += d * d + db * db")
    terms_body += [f"{part[f'r{k}'].format('j1')} += i{k}[j0, j1] * d + i{k}[j0b, j1] * db" for k in cross]
    terms_body += [f"{part[f's{k}'].format('j1')} += i{k}[j0, j1] + (i{k}[j0b, j1] if pair else {zero})" for k in sums]

    shown = {"sq": lambda k: "sqr(i0 - mean)", "cross": lambda k: f"i{k} * (i0 - mean)", "sum": lambda k: f"i{k}"}
    params = ", ".join(["nt"] + [f"i{k}" for k in range(n_in)] + [f"b{m}" for m in range(nout)])
    checks = [f"i{k}.shape[{d}] != n{d}" for k in range(1, n_in) for d in (0, 1)]

    def head(name: str) -> list[str]:
        lines = [f"def {name}({params}):",
                 f"{I}# over axis 0: sum(i0); " + "; ".join(f"sum({shown[kind](k)})" for kind, k in terms)
                 + f"; with mean = sum(i0) / n0 in {dtype}",
                 f"{I}n0 = i0.shape[0]", f"{I}n1 = i0.shape[1]"]
        if checks:
            lines += [f"{I}if {' or '.join(checks)}:",
                      f"{B}raise ValueError('centered_sums: input shapes do not match')"]
        return lines + [f"{I}o{m} = reuse(b{m}, (n1,))" for m in range(nout)]

    # serial: the sum, the mean, then the terms about the mean
    lines = head("kernel")
    lines += [f"{I}c = np.empty(n1, {np_dt})  # a run's sum of i0, then the mean",
              f"{I}part = np.empty(({len(parts)}, n1), {np_dt})  # {', '.join(parts)} over a run",
              f"{I}tot = np.zeros(({1 + len(parts)}, n1))  # float64: the sum of i0, then {', '.join(parts)}",
              f"{I}for r in range(0, n0, {ROW_RUN}):",
              f"{B}e = min(r + {ROW_RUN}, n0)",
              f"{B}c[:] = 0"]
    lines += two_rows(B, "e", "the sum", [f"c[j1] += i0[j0, j1] + (i0[j0b, j1] if pair else {zero})"])
    lines += [f"{B}for k1 in range(n1):",
              f"{R}tot[0, k1] += np.float64(c[k1])",
              f"{I}for k1 in range(n1):",
              f"{B}o0[k1] = {ctor}(tot[0, k1])",
              f"{B}c[k1] = o0[k1] / {ctor}(n0)  # the mean, as the graph computes it",
              f"{I}for r in range(0, n0, {ROW_RUN}):",
              f"{B}e = min(r + {ROW_RUN}, n0)",
              f"{B}part[:] = 0"]
    lines += two_rows(B, "e", "the terms about the mean", terms_body)
    lines += [f"{B}for k1 in range(n1):"]
    lines += [f"{R}tot[{1 + j}, k1] += np.float64({part[name].format('k1')})" for j, name in enumerate(parts)]
    lines += [f"{I}for k1 in range(n1):"]
    for m, (kind, k) in enumerate(terms, start=1):
        name = "q2" if kind == "sq" else f"r{k}" if kind == "cross" else f"s{k}" if k else None
        value = "o0[k1]" if name is None else f"{ctor}(tot[{1 + parts.index(name)}, k1])"
        lines.append(f"{B}o{m}[k1] = {value}")
    lines += [f"{I}return {tuple_expr([f'o{m}' for m in range(nout)])}", ""]

    # parallel: per block, in float64, one row each of ``acc``: the block's origin c0 (its first
    # run's mean), sx = sum(x), e1 = sum(x - c0), e2 = sum((x - c0)^2), h<k> = sum(i<k> (x - c0)),
    # g<k> = sum(i<k>)
    rows = ["c0", "sx"] + (["e1", "e2"] if sq else []) + [f"h{k}" for k in cross] + [f"g{k}" for k in sums]
    acc = {name: f"acc[{j}, blk, k1]" for j, name in enumerate(rows)}
    lines += head("kernel_parallel")
    lines += [f"{I}nb = max(1, min(nt, n0))  # row blocks summed in parallel",
              f"{I}run = max(8, min({ROW_RUN}, 65536 // max(n1, 1)))  # rows per run: a run of i0 stays in cache",
              f"{I}acc = np.zeros(({len(rows)}, nb, n1))  # per block: {', '.join(rows)}",
              f"{I}for blk in prange(nb):",
              f"{B}ps = np.empty(n1)  # a run's sum of i0",
              f"{B}c = np.empty(n1, {np_dt})  # its mean",
              f"{B}part = np.empty(({len(parts)}, n1), {np_dt})  # {', '.join(parts)} over the run",
              f"{B}lo = blk * n0 // nb",
              f"{B}hi = (blk + 1) * n0 // nb",
              f"{B}for r in range(lo, hi, run):",
              f"{R}e = min(r + run, hi)",
              f"{R}ps[:] = 0.0"]
    lines += two_rows(R, "e", "the run's sum",
                      ["ps[j1] += np.float64(i0[j0, j1]) + (np.float64(i0[j0b, j1]) if pair else 0.0)"])
    lines += [f"{R}for j1 in range(n1):",
              f"{R}{I}c[j1] = {ctor}(ps[j1] / (e - r))",
              f"{R}part[:] = 0"]
    lines += two_rows(R, "e", "the terms about the run's mean (the run still in cache)", terms_body)
    lines += [f"{R}m = np.float64(e - r)",
              f"{R}for k1 in range(n1):  # the run joins its block, moved to the block's origin",
              f"{R}{I}if r == lo:",
              f"{R}{B}{acc['c0']} = c[k1]",
              f"{R}{I}u = np.float64(c[k1]) - {acc['c0']}",
              f"{R}{I}{acc['sx']} += ps[k1]"]
    if sq:
        lines += [f"{R}{I}q1 = ps[k1] - m * np.float64(c[k1])  # sum(x - c) over the run",
                  f"{R}{I}{acc['e2']} += np.float64({part['q2'].format('k1')}) + 2.0 * u * q1 + m * u * u",
                  f"{R}{I}{acc['e1']} += q1 + m * u"]
    lines += [f"{R}{I}{acc[f'h{k}']} += np.float64({part[f'r{k}'].format('k1')}) + u * np.float64({part[f's{k}'].format('k1')})"
              for k in cross]
    lines += [f"{R}{I}{acc[f'g{k}']} += np.float64({part[f's{k}'].format('k1')})" for k in sums]
    # the blocks' sums, moved to the mean
    tot = lambda name: acc[name].replace("blk", "q")  # noqa: E731
    lines += [f"{I}for k1 in range(n1):",
              f"{B}t = 0.0",
              f"{B}for q in range(nb):",
              f"{R}t += {tot('sx')}",
              f"{B}o0[k1] = {ctor}(t)",
              f"{B}mean = np.float64(o0[k1] / {ctor}(n0))  # as the graph computes it"]
    lines += [f"{B}t{m} = 0.0" for m in range(1, nout)]
    lines += [f"{B}for q in range(nb):",
              f"{R}v = mean - {tot('c0')}"]
    if sq:
        lines.append(f"{R}nq = np.float64((q + 1) * n0 // nb - q * n0 // nb)")
    for m, (kind, k) in enumerate(terms, start=1):
        if kind == "sq":
            lines.append(f"{R}t{m} += {tot('e2')} - 2.0 * v * {tot('e1')} + nq * v * v")
        elif kind == "cross":
            lines.append(f"{R}t{m} += {tot(f'h{k}')} - v * {tot(f'g{k}')}")
        else:
            lines.append(f"{R}t{m} += {tot('sx' if k == 0 else f'g{k}')}")
    lines += [f"{B}o{m}[k1] = {ctor}(t{m})" for m in range(1, nout)]
    lines.append(f"{I}return {tuple_expr([f'o{m}' for m in range(nout)])}")
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
