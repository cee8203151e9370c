"""The rewrite framework: local rules, passes, pipelines and the log of every firing.

A *local rule* is a small function ``rule(fgraph, node)`` that returns ``None`` (does not
apply) or the replacement: a list with one new variable per output of ``node``, or a dict
``{old_variable: new_variable}``.  Rules say which ops they look at (``tracks``: op classes,
or scalar-op classes for ``Elemwise`` nodes), so a walk only calls the rules that can fire.

A *pass* edits a FunctionGraph and returns how many changes it made: ``LocalPass`` walks
the nodes in topological order trying its rules until nothing fires (or an iteration bound
is reached); ``GlobalPass`` wraps a function that looks at the whole graph (merge, fusion,
in-place); ``Fixpoint`` repeats a sequence of passes until none of them changes anything.
A *pipeline* is a named, ordered list of passes (``PIPELINES`` in ``__init__``).

Every replacement goes through ``apply_replacement``, which checks the types and records
a ``RewriteEntry`` in the ``RewriteLog``.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from minigraph.graph.basic import Apply, Constant, Variable
from minigraph.graph.fg import FunctionGraph, _compatible


def describe(v: Variable) -> str:
    """A short text for one variable: ``op(input, ...)`` or the variable itself."""
    if v.owner is None:
        return _short(v)
    node = v.owner
    args = ", ".join(_short(i) for i in node.inputs)
    suffix = f".{v.index}" if len(node.outputs) > 1 else ""
    return f"{node.op}({args}){suffix}"


def _short(v: Variable) -> str:
    if v.name is not None:
        return repr(v.name)
    if isinstance(v, Constant):
        data = v.data
        if getattr(data, "size", 1) == 1:
            return repr(data.item() if hasattr(data, "item") else data)
        return f"constant{{{v.type}}}"
    if v.owner is not None:
        return str(v.owner.op).split("{")[0]
    return f"<{v.type}>"


@dataclass
class RewriteEntry:
    """One firing: the rule, what it replaced and by what (as text, taken when it fired; the
    variables themselves in ``old`` and ``new``, empty in a log restored from the compile cache)."""

    rule: str
    replaced: tuple
    replacement: tuple
    old: tuple = field(default=(), repr=False, compare=False)
    new: tuple = field(default=(), repr=False, compare=False)

    def __str__(self) -> str:
        return f"{self.rule}: {'; '.join(self.replaced)} -> {'; '.join(self.replacement)}"


@dataclass
class RewriteLog:
    """Every rewrite that fired while compiling one function, in order."""

    pipeline: str | None = None
    entries: list = field(default_factory=list)
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: float = 0.0
    pass_seconds: list = field(default_factory=list)
    #: rules or passes that raised (a bug in a rewrite): (name, where, error); the rest ran
    failures: list = field(default_factory=list)
    #: loaded with the rewritten graph from the compile cache (``minigraph.compile.graph_cache``):
    #: the entries keep their text only, and the times are those of the process that rewrote it
    restored: bool = False

    def fail(self, name: str, where: str, error: Exception) -> None:
        """Record (and warn about) a rewrite that raised; compiling goes on without it."""
        self.failures.append((name, where, f"{type(error).__name__}: {error}"))
        warnings.warn(f"rewrite {name} failed on {where} and was skipped: {type(error).__name__}: {error}",
                      RuntimeWarning, stacklevel=2)

    def record(self, rule: str, old: Sequence[Variable], new: Sequence[Variable]) -> None:
        """Add one firing."""
        self.entries.append(RewriteEntry(rule, tuple(describe(v) for v in old), tuple(describe(v) for v in new),
                                         tuple(old), tuple(new)))

    def counts(self) -> dict[str, int]:
        """How often each rule fired, in order of first firing."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.rule] = out.get(e.rule, 0) + 1
        return out

    def summary(self) -> str:
        """Counts per rule and the node counts before and after."""
        lines = [f"rewrites ({self.pipeline}): {self.nodes_before} nodes -> {self.nodes_after} nodes, "
                 f"{len(self.entries)} firings in {self.seconds * 1000:.1f} ms"
                 + (" (restored from the compile cache)" if self.restored else "")]
        counts = self.counts()
        width = max((len(k) for k in counts), default=0)
        for rule, n in counts.items():
            lines.append(f"  {rule:<{width}}  {n}")
        for name, where, error in self.failures:
            lines.append(f"  FAILED {name} on {where}: {error}")
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __str__(self) -> str:
        return "\n".join(map(str, self.entries))


# --- local rules ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalRule:
    """A named rule ``fn(fgraph, node) -> replacement or None`` for the ops in ``tracks``."""

    name: str
    fn: Callable
    tracks: tuple = ()

    def __call__(self, fgraph, node):
        return self.fn(fgraph, node)


def local_rule(name: str, *tracks) -> Callable[[Callable], LocalRule]:
    """Decorator: ``@local_rule("local_mul_one", Mul)`` turns a function into a LocalRule."""
    def wrap(fn):
        return LocalRule(name, fn, tuple(tracks))

    return wrap


def _node_keys(node: Apply) -> tuple:
    op = node.op
    scalar = getattr(op, "scalar_op", None)
    return (type(op),) if scalar is None else (type(op), type(scalar))


def apply_replacement(fgraph: FunctionGraph, log: RewriteLog, rule: str, pairs: Sequence[tuple]) -> bool:
    """Replace each ``old`` by ``new`` (types checked) and record the firing; False if nothing changed."""
    pairs = [(o, n) for o, n in pairs if o is not n and n is not None]
    if not pairs:
        return False
    for old, new in pairs:
        if not (old.type == new.type or _compatible(old.type, new.type)):
            raise TypeError(f"rewrite {rule}: {describe(old)} of type {old.type} cannot become "
                            f"{describe(new)} of type {new.type}")
    log.record(rule, [o for o, _ in pairs], [n for _, n in pairs])
    fgraph.replace_all(pairs, rule)
    return True


class Pass:
    """Something that edits a FunctionGraph: ``run(fgraph, log)`` returns the number of changes."""

    name = "pass"

    def run(self, fgraph: FunctionGraph, log: RewriteLog) -> int:
        """Edit ``fgraph``, record firings in ``log``, return the number of changes."""
        raise NotImplementedError


class LocalPass(Pass):
    """Try ``rules`` on every node in topological order until none fires (at most ``max_iter`` sweeps)."""

    def __init__(self, name: str, rules: Sequence[LocalRule], max_iter: int = 20):
        self.name = name
        self.rules = list(rules)
        self.max_iter = max_iter
        self._index: dict[type, list[LocalRule]] = {}
        self._cache: dict[tuple, list[LocalRule]] = {}
        for r in self.rules:
            for t in r.tracks:
                self._index.setdefault(t, []).append(r)

    def rules_for(self, node: Apply) -> list[LocalRule]:
        """The rules that may fire on ``node``, in the order they were given."""
        keys = _node_keys(node)
        cached = self._cache.get(keys)
        if cached is None:
            found = {id(r) for k in keys for r in self._index.get(k, ())}
            cached = self._cache[keys] = [r for r in self.rules if id(r) in found or not r.tracks]
        return cached

    def run(self, fgraph, log):
        """See ``Pass.run``."""
        total = 0
        for _ in range(self.max_iter):
            changed = 0
            for node in fgraph.toposort():
                if node not in fgraph.nodes:
                    continue
                for rule in self.rules_for(node):
                    try:
                        result = rule(fgraph, node)
                        if result is None:
                            continue
                        pairs = list(result.items()) if isinstance(result, dict) else list(zip(node.outputs, result))
                        done = apply_replacement(fgraph, log, rule.name, pairs)
                    except Exception as e:  # a bug in one rule must not stop the compilation
                        log.fail(rule.name, str(node.op), e)
                        continue
                    if done:
                        changed += 1
                        break
            total += changed
            if not changed:
                break
        return total


class GlobalPass(Pass):
    """A whole-graph pass given as a function ``fn(fgraph, log) -> number of changes``."""

    def __init__(self, name: str, fn: Callable):
        self.name = name
        self.fn = fn

    def run(self, fgraph, log):
        """See ``Pass.run``."""
        return self.fn(fgraph, log)


class Fixpoint(Pass):
    """Repeat ``passes`` in order until a whole round changes nothing (at most ``max_iter`` rounds)."""

    def __init__(self, name: str, passes: Sequence[Pass], max_iter: int = 10):
        self.name = name
        self.passes = list(passes)
        self.max_iter = max_iter

    def run(self, fgraph, log):
        """See ``Pass.run``."""
        total = 0
        for _ in range(self.max_iter):
            # a rewrite may have made a new matrix product tie two lengths together: the last
            # round must see every such fact
            forget_shape_facts(fgraph)
            changed = sum(run_pass(p, fgraph, log) for p in self.passes)
            total += changed
            if not changed:
                break
        return total


def forget_shape_facts(fgraph: FunctionGraph) -> None:
    """Drop the ShapeKeys the shape rules keep on ``fgraph`` (``rewriting.shapes.shape_keys``):
    they are learnt again from the graph as it is now."""
    fgraph.__dict__.pop("_shape_keys", None)


def run_pass(p: Pass, fgraph: FunctionGraph, log: RewriteLog) -> int:
    """Run one pass and note its time in the log."""
    start = time.perf_counter()
    try:
        n = p.run(fgraph, log)
    except Exception as e:  # every edit is a complete replacement: the graph stays valid
        log.fail(p.name, "the graph", e)
        n = 0
    log.pass_seconds.append((p.name, time.perf_counter() - start, n))
    return n


def run_pipeline(fgraph: FunctionGraph, name: str, passes: Sequence[Pass]) -> RewriteLog:
    """Run ``passes`` in order on ``fgraph`` and return the log."""
    log = RewriteLog(pipeline=name, nodes_before=len(fgraph))
    start = time.perf_counter()
    try:
        for p in passes:
            run_pass(p, fgraph, log)
    finally:
        forget_shape_facts(fgraph)
    log.seconds = time.perf_counter() - start
    log.nodes_after = len(fgraph)
    return log
