"""Per-kernel call counts and times of a compiled function (``mg.function(..., profile=True)``).

Backends report each kernel's run with ``Profile.record(key, seconds)`` and each whole call
with ``Profile.record_call(seconds)``.  A key names one kernel; by convention it reads
``"<name> = <what it computes>"`` (the python backend uses the listing's names:
``"c = mul"``; the numba backend ``"k3 reduce sum{axis=0}"``), and ``summary(by="op")``
groups kernels on the op part (after ``" = "``, without a leading kernel label).
"""
from __future__ import annotations

import re
from collections import defaultdict


def _op_of(key: str) -> str:
    """The op part of a kernel key: ``"c = mul"`` -> ``"mul"``, ``"k3 reduce sum{axis=0}"`` ->
    ``"reduce sum{axis=0}"``."""
    return re.sub(r"^k\d+\s+", "", key.split(" = ", 1)[-1])


class Profile:
    """Accumulates calls and seconds per kernel; ``summary()`` renders the table."""

    def __init__(self):
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.function_calls = 0
        #: wall time of whole calls, when the backend reports it (record_call)
        self.call_seconds = 0.0

    def record(self, key: str, seconds: float) -> None:
        """One run of kernel ``key`` that took ``seconds``."""
        self.calls[key] += 1
        self.seconds[key] += seconds

    def record_call(self, seconds: float | None = None) -> None:
        """One call of the compiled function (``seconds``: its wall time, if measured)."""
        self.function_calls += 1
        if seconds is not None:
            self.call_seconds += seconds

    def reset(self) -> None:
        """Forget everything recorded so far (e.g. after warm-up calls)."""
        self.calls.clear()
        self.seconds.clear()
        self.function_calls = 0
        self.call_seconds = 0.0

    def rows(self, by: str = "kernel") -> list[tuple[str, int, float]]:
        """``(key, calls, seconds)`` sorted by time (longest first, then by key)."""
        if by not in ("kernel", "op"):
            raise ValueError(f"Profile.rows: by must be 'kernel' or 'op', got {by!r}")
        calls: dict[str, int] = defaultdict(int)
        seconds: dict[str, float] = defaultdict(float)
        for key in self.seconds:
            group = _op_of(key) if by == "op" else key
            calls[group] += self.calls[key]
            seconds[group] += self.seconds[key]
        return sorted(((k, calls[k], seconds[k]) for k in seconds), key=lambda r: (-r[2], r[0]))

    @property
    def total_seconds(self) -> float:
        """Time spent inside kernels."""
        return sum(self.seconds.values())

    def summary(self, by: str = "kernel", limit: int | None = None) -> str:
        """A table sorted by time with each kernel's share of the total (``by="op"``: per op).

        ``limit`` keeps the slowest rows only (the rest are summed on one line).
        """
        rows = self.rows(by)
        total = self.total_seconds
        share_base = total or 1.0
        head = f"{'time (ms)':>10} {'share':>6} {'cumul':>6} {'calls':>7} {'per call (us)':>13}  {by}"
        lines = [head, "-" * max(len(head), 60)]
        cumulative = 0.0
        shown = rows if limit is None else rows[:limit]
        for key, n, sec in shown:
            cumulative += sec
            lines.append(f"{sec * 1e3:10.3f} {sec / share_base:6.1%} {cumulative / share_base:6.1%} {n:7d} "
                         f"{sec / max(n, 1) * 1e6:13.1f}  {key}")
        rest = rows[len(shown):]
        if rest:
            sec = sum(r[2] for r in rest)
            lines.append(f"{sec * 1e3:10.3f} {sec / share_base:6.1%} {'':>6} {sum(r[1] for r in rest):7d} "
                         f"{'':>13}  ({len(rest)} more)")
        lines.append("-" * max(len(head), 60))
        lines.append(f"{total * 1e3:10.3f} ms in {len(rows)} {by}s over {self.function_calls} function calls")
        if self.call_seconds:
            overhead = self.call_seconds - total
            lines.append(f"{self.call_seconds * 1e3:10.3f} ms wall time of the calls "
                         f"({max(overhead, 0.0) * 1e3:.3f} ms outside the kernels)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
