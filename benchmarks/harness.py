"""Shared benchmark plumbing: a clean environment, timing, the machine's memory bandwidth (a
triad) and a table printer.  Benchmarks are run by hand (``python benchmarks/bn.py``), never by pytest."""
from __future__ import annotations

import os
import statistics
import sys
import time

#: variables that change which BLAS kernels run; benchmarks measure the machine's defaults
_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def clean_environment(threads: int = 2) -> None:
    """Re-execute this script without the OpenBLAS overrides and with ``threads`` threads for
    numba, OpenBLAS and minigraph (before numpy or numba are imported); ``--threads=N`` on the
    command line overrides ``threads`` (on a machine busy with other work, two BLAS threads
    can be many times slower than one: both must get a core at once)."""
    for arg in sys.argv[1:]:
        if arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
    want = {"MINIGRAPH_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
            # as minigraph's numba backend sets it, for every side measured (the triad too)
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if any(k in os.environ for k in _UNSET) or any(os.environ.get(k) != v for k, v in want.items()):
        env = {k: v for k, v in os.environ.items() if k not in _UNSET}
        env.update(want)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def time_samples(fns, repeat: int = 15, warmup: int = 2, min_time: float = 0.0) -> list[list[float]]:
    """Seconds per call of each of ``fns``, ``repeat`` samples each (after ``warmup`` calls).
    The functions take turns within each round, so that a shared machine's slow minutes fall
    on all of them alike; each sample loops until ``min_time`` has passed, so that short calls
    are measured over many calls."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, samples):
            n, start = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
            out.append(elapsed / n)
    return samples


def median_time(fn, repeat: int = 15, warmup: int = 2, min_time: float = 0.0) -> float:
    """Median seconds of ``fn()`` (see ``time_samples``)."""
    return statistics.median(time_samples([fn], repeat, warmup, min_time)[0])


def median_ratio(a: list[float], b: list[float]) -> float:
    """The median over rounds of ``a / b`` (samples from one ``time_samples`` call)."""
    return statistics.median(x / y for x, y in zip(a, b))


def triad(n: int = 1 << 24):
    """(a call, the bytes it moves) of a STREAM-like triad ``a = b + s * c`` on float32 arrays,
    compiled with numba and run in parallel on the configured threads (3 arrays of 4-byte
    elements per element: the write-allocate traffic is not counted, as in STREAM)."""
    import numba
    import numpy as np

    @numba.njit(parallel=True, fastmath=True)
    def kernel(a, b, c, s):
        for i in numba.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    a = np.zeros(n, np.float32)
    b = np.ones(n, np.float32)
    c = np.full(n, 2.0, np.float32)
    s = np.float32(3.0)
    kernel(a, b, c, s)
    return (lambda: kernel(a, b, c, s)), 3 * 4 * n


def table(headers: list[str], rows: list[list]) -> str:
    """A plain text table; floats shown with 3 significant digits."""
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
