"""The rewritten-graph cache: a process that compiles a graph compiled before skips the rewrites.

When the kernels are already compiled and cached on disk, rewriting is the largest part of
``mg.function`` that is minigraph's own: about 0.18 s for the seed MLP's training step (850
nodes rewritten to 296, ``python benchmarks/rewriting.py``).  What the rewrites produce depends only on the graph they are given,
the pipeline, and the code of minigraph and numpy (constant folding computes with numpy), so
the rewritten graph is stored in ``<MINIGRAPH_CACHE_DIR>/graphs`` under a hash of exactly those,
and a later compile of the same graph loads it in place of rewriting.

The key covers every node's op with all its parameters, the wiring, the names and types of the
variables, the values of the constants, the user's source lines recorded on the nodes (error
messages name them) and the line calling ``mg.function``, which inputs are shared and which
are updated, the pipeline, and a hash of minigraph's source files with the versions of numpy
and Python.  A graph is rewritten every time, and not stored, when it has fewer than
``MIN_NODES`` nodes (rewriting it costs less than the cache), when an op is defined outside
minigraph (its code is not in the key) or has a parameter the key cannot describe exactly,
when the pipeline is not one of minigraph's own, or when a rewrite failed.
``MINIGRAPH_GRAPH_CACHE=0`` turns the cache off.

Entries are checksummed and written atomically; one that is damaged or unreadable is counted
in ``stats()["corrupt"]`` and the graph is rewritten.  A restored function's ``rewrite_log``
keeps the text of every firing (not the variables) and says ``restored=True``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import pickle
import sys
import warnings

import numpy as np

from minigraph.compile.disk import atomic_write, cache_dir, checksummed, verified
from minigraph.compile.shared import SharedVariable
from minigraph.config import config
from minigraph.graph.basic import Constant, user_frame
from minigraph.graph.type import TensorType

#: graphs with fewer nodes (before rewriting) are rewritten every time: they take less than
#: about 50 ms (a batch-normalized MLP's training step has about 80 nodes per layer)
MIN_NODES = 300

_STATS = {"hits": 0, "stored": 0, "corrupt": 0}
_FORMAT = b"minigraph-graph-1\n"


def stats() -> dict:
    """Counters since the process started: ``hits`` (rewritten graphs loaded from disk),
    ``stored`` (written after rewriting) and ``corrupt`` (entries found damaged and rewritten)."""
    return dict(_STATS)


def enabled() -> bool:
    """False when ``MINIGRAPH_GRAPH_CACHE`` is 0 (read at each use)."""
    return os.environ.get("MINIGRAPH_GRAPH_CACHE", "1") != "0"


class _Uncacheable(Exception):
    """The graph has something the key cannot describe exactly."""


@functools.lru_cache(maxsize=None)
def _version() -> str:
    """minigraph's source files (any edit to a rewrite changes its results), numpy and Python."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(directory, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(f.read())
    return f"minigraph={digest.hexdigest()};numpy={np.__version__};python={sys.version.split()[0]}"


def _describe(value) -> str:
    """An exact text for one op parameter: equal texts for equal values only."""
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return repr(value)
    if t in (tuple, list):
        return "(" + ",".join(map(_describe, value)) + ")"
    if t is TensorType:
        return repr(value)
    if t is frozenset:
        return "{" + ",".join(sorted(map(_describe, value))) + "}"
    if t is slice:
        return f"slice({_describe(value.start)},{_describe(value.stop)},{_describe(value.step)})"
    if t is bytes:
        return "bytes:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, np.ndarray):
        data = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"array({value.dtype.str},{value.shape},{data})"
    if isinstance(value, np.generic):
        return f"{value.dtype.str}:{value.tobytes().hex()}"
    if isinstance(value, np.dtype):
        return "dtype:" + value.str
    name, fields = _class_facts(t)
    if fields is not None:
        return f"{name}({','.join(f'{f}={_describe(getattr(value, f))}' for f in fields)})"
    key = getattr(value, "_key", None)  # a user's OpFromGraph: its inner graph's canonical form
    if name == "minigraph.graph.opfromgraph.OpFromGraph" and key is not None:
        return f"{name}({_describe(value.name)},{_describe(key)})"
    raise _Uncacheable(name)


@functools.lru_cache(maxsize=None)
def _class_facts(cls) -> tuple:
    """(full name, dataclass field names or None) of a class defined in minigraph."""
    if not cls.__module__.startswith("minigraph."):
        raise _Uncacheable(f"{cls.__module__}.{cls.__qualname__}")
    fields = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
    return f"{cls.__module__}.{cls.__qualname__}", fields


def key(fgraph, rewrites) -> str | None:
    """The cache key of rewriting ``fgraph`` (as ``mg.function`` built it) with the pipeline
    ``rewrites``, or None when this graph is not cached."""
    from minigraph.rewriting import PIPELINES

    if rewrites is None or not enabled() or len(fgraph) < MIN_NODES:
        return None
    make_passes = PIPELINES.get(rewrites)
    if make_passes is None or not _own_code(make_passes):
        return None
    refs: dict[int, int] = {}
    ops: dict[int, str] = {}
    lines = [_version(), f"pipeline={rewrites!r} floatX={config.floatX}", f"called from {user_frame()!r}"]

    def ref(v) -> int:
        r = refs.get(id(v))
        if r is None:
            if not isinstance(v, Constant):
                raise _Uncacheable(repr(v))
            r = refs[id(v)] = len(refs)
            lines.append(f"constant {type(v).__qualname__} {_describe(v.type)} {_describe(v.data)} {v.name!r}")
        return r

    try:
        for v in fgraph.inputs:
            kind = "shared" if isinstance(v, SharedVariable) else "input"
            refs[id(v)] = len(refs)
            lines.append(f"{kind} {type(v).__qualname__} {_describe(v.type)} {v.name!r}")
        for node in fgraph.toposort():
            op = ops.get(id(node.op))
            if op is None:
                op = ops[id(node.op)] = _describe(node.op)
            args = [ref(v) for v in node.inputs]
            outs = []
            for o in node.outputs:
                refs[id(o)] = len(refs)
                outs.append(f"{_describe(o.type)} {o.name!r}")
            lines.append(f"{op} {args} {node.trace!r} -> {'; '.join(outs)}")
        lines.append(f"outputs {[ref(v) for v in fgraph.outputs]} updates {sorted(fgraph.update_map.items())}")
    except _Uncacheable:
        return None
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


class _Pickler(pickle.Pickler):
    """Pickles a rewritten graph with the function's inputs (its own variables, shared
    variables holding values) as references by position."""

    def __init__(self, file, inputs):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._positions = {id(v): i for i, v in enumerate(inputs)}

    def persistent_id(self, obj):
        return self._positions.get(id(obj))


class _Unpickler(pickle.Unpickler):
    """Reads what ``_Pickler`` wrote, with the inputs of the function being compiled."""

    def __init__(self, file, inputs):
        super().__init__(file)
        self._inputs = inputs

    def persistent_load(self, position):
        return self._inputs[position]


def _own_code(make_passes) -> bool:
    """Whether the pipeline that ``make_passes`` builds runs minigraph's code only: its passes,
    their functions and their rules (that code is in the key; a rule a user adds is not)."""
    code, passes = [make_passes], list(make_passes())
    while passes:
        p = passes.pop()
        code.append(type(p))
        code.extend(getattr(rule, "fn", rule) for rule in getattr(p, "rules", ()))
        if hasattr(p, "fn"):
            code.append(p.fn)
        passes.extend(getattr(p, "passes", ()))
    return all(getattr(c, "__module__", "").startswith("minigraph.") for c in code)


def _path(k: str) -> str:
    return os.path.join(cache_dir(), "graphs", f"g_{k}.pickle")


def load(k: str, fgraph):
    """Give ``fgraph`` its rewritten form stored under key ``k`` and return its rewrite log, or
    return None (nothing stored, or damaged) and leave ``fgraph`` as it is."""
    try:
        with open(_path(k), "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        payload = verified(data[len(_FORMAT):]) if data.startswith(_FORMAT) else None
        if payload is None:
            raise ValueError("checksum")
        stored_key, outputs, inplace_updates, constraints, log = _Unpickler(io.BytesIO(payload), fgraph.inputs).load()
        if stored_key != k or len(outputs) != len(fgraph.outputs):
            raise ValueError("key")
    except Exception:
        _STATS["corrupt"] += 1
        return None
    fgraph.outputs = outputs
    fgraph.rebuild_clients()
    fgraph.inplace_updates = inplace_updates
    fgraph.constrain_order(constraints)
    _STATS["hits"] += 1
    return log


def store(k: str, fgraph, log) -> None:
    """Write the rewritten ``fgraph`` and the text of its log under key ``k`` (not when a
    rewrite failed: the next process tries again)."""
    from minigraph.rewriting.framework import RewriteEntry

    if log.failures:
        return
    text_log = dataclasses.replace(log, entries=[RewriteEntry(e.rule, e.replaced, e.replacement) for e in log.entries],
                                   restored=True)
    buf = io.BytesIO()
    try:
        _Pickler(buf, fgraph.inputs).dump((k, fgraph.outputs, fgraph.inplace_updates, fgraph.order_constraints, text_log))
        os.makedirs(os.path.dirname(_path(k)), exist_ok=True)
        atomic_write(_path(k), _FORMAT + checksummed(buf.getvalue()))
    except Exception as e:  # a full disk, a read-only cache or an op that cannot be pickled
        warnings.warn(f"minigraph: could not store the rewritten graph ({type(e).__name__}: {e})", stacklevel=3)
        return
    _STATS["stored"] += 1
