"""Per-node (or per-kernel) call counts and times of a compiled function (``profile=True``)."""
from __future__ import annotations

from collections import defaultdict


class Profile:
    """Accumulates time per kernel; ``summary()`` renders the table."""

    def __init__(self):
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.function_calls = 0

    def record(self, key: str, seconds: float) -> None:
        self.calls[key] += 1
        self.seconds[key] += seconds

    def summary(self) -> str:
        """A table of kernels sorted by time, with each one's share of the total."""
        total = sum(self.seconds.values()) or 1e-300
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        lines = [f"{'time (ms)':>10} {'share':>6} {'calls':>6} {'per call (us)':>13}  kernel",
                 "-" * 70]
        for key, sec in rows:
            n = self.calls[key]
            lines.append(f"{sec * 1e3:10.3f} {sec / total:6.1%} {n:6d} {sec / max(n, 1) * 1e6:13.1f}  {key}")
        lines.append("-" * 70)
        lines.append(f"{total * 1e3:10.3f} total over {self.function_calls} function calls")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
