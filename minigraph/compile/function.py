"""``mg.function``: from symbolic inputs and outputs to a callable.

The user's outputs (and update expressions) are copied into a ``FunctionGraph``, the
rewrite pipeline simplifies the copy, and a backend (linker) turns it into a thunk that maps
input values to output values.  Shared variables are implicit inputs; updates are written
back after all outputs are computed.
"""
from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable, Mapping

import numpy as np

from minigraph.compile.shared import SharedVariable
from minigraph.graph.basic import Constant, Variable, as_list, clone_replace, graph_inputs
from minigraph.graph.fg import FunctionGraph


class MissingInputError(ValueError):
    """An output depends on a variable that is neither an input nor shared."""


def _as_pairs(x) -> list:
    if x is None:
        return []
    if isinstance(x, Mapping):
        return list(x.items())
    return [tuple(p) for p in x]


def _check_update(var, value):
    from minigraph.tensor import math as M
    from minigraph.tensor.basic import as_tensor_variable

    if not isinstance(var, SharedVariable):
        raise TypeError(f"updates: {var!r} is not a shared variable; only shared variables can be updated")
    value = as_tensor_variable(value)
    label = f"update of {var.name!r}" if var.name else "update of a shared variable"
    if value.ndim != var.ndim:
        raise TypeError(f"{label}: the new value has {value.ndim} dimensions ({value.type}), the variable {var.ndim} ({var.type})")
    if value.dtype != var.dtype:
        if not np.can_cast(value.dtype, var.dtype, "same_kind") or np.dtype(value.dtype).kind != np.dtype(var.dtype).kind:
            raise TypeError(f"{label}: the new value has dtype {value.dtype}, the variable {var.dtype}")
        if np.dtype(value.dtype).itemsize > np.dtype(var.dtype).itemsize:
            raise TypeError(f"{label}: the new value has dtype {value.dtype}, wider than the variable's {var.dtype}; "
                            f"cast it explicitly")
        value = M.cast(value, var.dtype)
    for a, b in zip(var.type.shape, value.type.shape):
        if a is not None and b is not None and a != b:
            raise ValueError(f"{label}: the new value has shape {value.type}, the variable {var.type}")
    return var, value


class Function:
    """A compiled function.  Call it with values for its inputs."""

    def __init__(self, inputs, outputs, updates, fgraph, thunk, name, mode, rewrite_log, profile):
        self.inputs = inputs
        self._single = not isinstance(outputs, (list, tuple))
        self.outputs = as_list(outputs) if outputs is not None else []
        self.updates = updates
        self.fgraph = fgraph
        self.name = name
        self.mode = mode
        self.rewrite_log = rewrite_log
        self.profile = profile
        self._thunk = thunk
        self._shared = [v for v in fgraph.inputs[len(inputs):]]
        self._update_targets = [var for var, _ in updates]
        self._lock = threading.Lock()
        # the function's own lock, then one lock per shared variable it reads or updates, always
        # taken in the same global order (by id) so that two functions never deadlock
        self._locks = [self._lock] + [_shared_lock(v) for v in sorted(self._shared, key=id)]
        # what errors call each input, and which outputs the backend allocates for each call
        self._labels = [f"input {i} ({v.name!r})" if v.name else f"input {i}" for i, v in enumerate(inputs)]
        self._filters = [v.type.filter for v in inputs]
        self._exact = _exact_test([v.type for v in inputs])
        # the outputs to check for aliasing: all but those a backend says it allocated for this
        # call alone (numba's arrays do not set numpy's owndata flag: they would be copied)
        fresh = getattr(thunk, "fresh_outputs", None) or ()
        self._checked = [i for i in range(len(self.outputs) + len(updates)) if not (i < len(fresh) and fresh[i])]

    def _bind(self, args, kwargs) -> list:
        """Positional values from ``args`` and ``kwargs`` by input name."""
        names = {v.name: i for i, v in enumerate(self.inputs) if v.name}
        missing = object()
        args = list(args) + [missing] * (len(self.inputs) - len(args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"{self.name or 'function'}: unknown input name {k!r}")
            if args[names[k]] is not missing:
                raise TypeError(f"{self.name or 'function'}: input {k!r} given twice")
            args[names[k]] = v
        absent = [repr(self.inputs[i].name) if self.inputs[i].name else f"input {i}"
                  for i, a in enumerate(args) if a is missing]
        if absent:
            raise TypeError(f"{self.name or 'function'}: missing value for {', '.join(absent)}")
        return args

    def __call__(self, *args, **kwargs):
        if kwargs:
            args = self._bind(args, kwargs)
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name or 'function'}: expected {len(self.inputs)} inputs, got {len(args)}")
        if self._exact(*args):
            values = list(args)
        else:
            values = [check(a, label) for check, a, label in zip(self._filters, args, self._labels)]
        # concurrent calls are serialized: the backend reuses buffers, and calls of any functions
        # that touch the same shared variables must not interleave (read, compute, write back)
        for lock in self._locks:
            lock.acquire()
        try:
            shared_values = [s._value for s in self._shared]
            results = list(self._thunk(values + shared_values))
            n = len(self.outputs)
            # results never alias the inputs, the shared values or each other: an output may be
            # an input passed through, a shared value, or the same array as another output
            taken = None
            for i in self._checked:
                o = results[i]
                if i >= n and (not isinstance(o, np.ndarray) or o is self._update_targets[i - n]._value):
                    continue  # an update computed in place, or a scalar
                if _owns(o):
                    if taken is None:
                        taken = {id(v) for v in values} | {id(v) for v in shared_values}
                    if id(o) not in taken and not any(o is r for r in results[:i]):
                        continue
                results[i] = np.array(o, copy=True)
            for var, new in zip(self._update_targets, results[n:]):
                var._value = new
            results = results[:n]
        finally:
            for lock in reversed(self._locks):
                lock.release()
        if self._single:
            return results[0] if results else None
        return results

    def source(self) -> str:
        """The generated code (numba mode), or the node listing (python mode)."""
        src = getattr(self._thunk, "source", None)
        if callable(src):
            return src()
        from minigraph.printing import listing

        return listing(self.fgraph.outputs)

    def __repr__(self) -> str:
        return f"<minigraph.Function {self.name or ''} mode={self.mode} nodes={len(self.fgraph.toposort())}>"


_SHARED_LOCKS: "weakref.WeakKeyDictionary[SharedVariable, threading.Lock]" = weakref.WeakKeyDictionary()
_SHARED_LOCKS_GUARD = threading.Lock()


def _shared_lock(var) -> threading.Lock:
    """The lock that serializes the calls of every function using the shared variable ``var``."""
    with _SHARED_LOCKS_GUARD:
        lock = _SHARED_LOCKS.get(var)
        if lock is None:
            lock = _SHARED_LOCKS[var] = threading.Lock()
        return lock


def _exact_test(types: list) -> Callable:
    """A function of one value per type telling whether each is an array of exactly that type
    (dtype, rank, static lengths): then ``TensorType.filter`` would return them as they are.
    Generated as one expression, since every call of a compiled function runs it first."""
    env, terms = {"ndarray": np.ndarray}, []
    for k, t in enumerate(types):
        env[f"dtype{k}"] = t.np_dtype
        terms.append(f"type(a{k}) is ndarray and a{k}.dtype is dtype{k} and a{k}.ndim == {t.ndim:d}")
        terms += [f"a{k}.shape[{d:d}] == {n:d}" for d, n in enumerate(t.shape) if n is not None]
    params = ", ".join(f"a{k}" for k in range(len(types)))
    exec(f"def exact({params}):\n    return {' and '.join(terms) or 'True'}\n", env)
    return env["exact"]


def _owns(a) -> bool:
    if not isinstance(a, np.ndarray):
        return False
    flags = a.flags
    return flags.owndata and flags.writeable


def function(inputs, outputs=None, updates=None, givens=None, mode=None, name=None,
             on_unused_input="raise", rewrites="fast_run", profile=False, nan_guard=False):
    """Compile ``outputs`` (a variable or a list) as a function of ``inputs``.

    ``updates``: pairs ``(shared_variable, new_value)`` applied after the outputs are
    computed.  ``givens``: pairs ``(variable, replacement)`` substituted before compiling.
    ``mode``: "numba" (default), "python" (the reference interpreter) or "debug" (both,
    compared node by node).  ``rewrites``: "fast_run", "fast_compile" or None.
    """
    from minigraph.compile.mode import get_linker
    from minigraph.tensor.basic import as_tensor_variable

    if on_unused_input not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_unused_input must be 'raise', 'warn' or 'ignore', got {on_unused_input!r}")
    inputs = as_list(inputs)
    for i, v in enumerate(inputs):
        if not isinstance(v, Variable) or isinstance(v, (Constant, SharedVariable)) or v.owner is not None:
            raise TypeError(f"function: input {i} ({v!r}) must be a symbolic root variable such as T.matrix('x'); "
                            f"constants and shared variables are not inputs")
    if len(set(map(id, inputs))) != len(inputs):
        raise ValueError("function: the same variable is given twice as an input")
    out_list = [] if outputs is None else [as_tensor_variable(o) for o in as_list(outputs)]
    update_pairs = [_check_update(var, val) for var, val in _as_pairs(updates)]
    if len({id(v) for v, _ in update_pairs}) != len(update_pairs):
        raise ValueError("function: a shared variable is updated twice")

    givens = _as_pairs(givens)
    if givens:
        replace = {}
        for old, new in givens:
            new = as_tensor_variable(new)
            if new.ndim != old.ndim or new.dtype != old.dtype:
                raise TypeError(f"givens: {old!r} ({old.type}) cannot be replaced by {new!r} ({new.type})")
            replace[old] = new
        cloned = clone_replace(out_list + [v for _, v in update_pairs], replace)
        out_list = cloned[: len(out_list)]
        update_pairs = [(var, v) for (var, _), v in zip(update_pairs, cloned[len(out_list):])]

    # default updates (random number streams) of shared variables the graph uses
    explicit = {id(v) for v, _ in update_pairs}
    frontier = out_list + [v for _, v in update_pairs]
    seen = set()
    while True:
        added = False
        for v in graph_inputs(frontier):
            if isinstance(v, SharedVariable) and v.default_update is not None and id(v) not in explicit | seen:
                seen.add(id(v))
                update_pairs.append((v, v.default_update))
                frontier.append(v.default_update)
                added = True
        if not added:
            break

    all_outputs = out_list + [v for _, v in update_pairs]
    roots = graph_inputs(all_outputs)
    input_ids = {id(v) for v in inputs}
    shared_vars = []
    for v in roots:
        if isinstance(v, SharedVariable):
            shared_vars.append(v)
        elif not isinstance(v, Constant) and id(v) not in input_ids:
            raise MissingInputError(f"function: the outputs depend on {v!r} ({v.type}), which is not among the inputs "
                                    f"(add it to the inputs, or replace it with givens)")
    for var, _ in update_pairs:
        if var not in shared_vars:
            shared_vars.append(var)
    used = {id(v) for v in roots}
    unused = [v for v in inputs if id(v) not in used]
    if unused and on_unused_input != "ignore":
        message = f"function: input(s) {', '.join(map(repr, unused))} are not used to compute the outputs"
        if on_unused_input == "raise":
            raise ValueError(message + " (pass on_unused_input='ignore' to allow this)")
        warnings.warn(message, stacklevel=2)

    fgraph = FunctionGraph(inputs + shared_vars, all_outputs)
    # which outputs are new values of which shared inputs (the in-place rewrite needs it)
    fgraph.update_map = {len(out_list) + k: len(inputs) + shared_vars.index(var) for k, (var, _) in enumerate(update_pairs)}
    rewrite_log = _rewrite(fgraph, rewrites)
    mode = mode or default_mode()
    linker = get_linker(mode)
    profile_obj = _make_profile(profile)
    thunk = linker(fgraph, profile=profile_obj, nan_guard=nan_guard)
    return Function(inputs, outputs if outputs is not None else [], update_pairs, fgraph, thunk, name, mode,
                    rewrite_log, profile_obj)


def default_mode() -> str:
    """The mode used when ``function`` is given none (``MINIGRAPH_MODE``, else python)."""
    from minigraph.compile import mode

    return mode.DEFAULT_MODE


def _rewrite(fgraph, rewrites):
    """Rewrite ``fgraph`` in place, or load its rewritten form from the compile cache."""
    try:
        from minigraph.rewriting import rewrite_graph
    except ImportError:
        return None
    from minigraph.compile import graph_cache

    key = graph_cache.key(fgraph, rewrites)
    log = graph_cache.load(key, fgraph) if key is not None else None
    if log is None:
        log = rewrite_graph(fgraph, rewrites)
        if key is not None:
            graph_cache.store(key, fgraph, log)
    return log


def _make_profile(profile):
    if not profile:
        return None
    from minigraph.compile.profile import Profile

    return Profile()
