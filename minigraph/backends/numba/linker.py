"""NumbaLinker: from a rewritten FunctionGraph to a thunk running compiled kernels.

Each node becomes a kernel (a loop nest compiled with numba, or a driver expression: a view,
a BLAS call); composite ops without a lowering of their own (``OpFromGraph``) are inlined
first.  A generated Python driver runs the kernels in order: it names variables as
``mg.printing.listing`` does, shows each node as a comment, keeps one reused buffer per
intermediate, and picks a kernel's parallel variant when its work is large.

Once the function is hot, the same steps also run as one compiled function (the compiled
driver), for calls on small inputs, where the Python between kernels would cost as much as the
kernels themselves; a function with a step that has no compiled form keeps the Python driver.

When a compiled call fails (a shape error, or a length 1 known only at run time that the
kernels do not broadcast), the call is run again on the reference interpreter: its error names
the node and the user's line, and a run-time broadcast gets numpy's answer.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings

import numpy as np

from minigraph.backends.numba import cache
from minigraph.backends.numba.codegen import tuple_expr
from minigraph.backends.numba.registry import Inline, Kernel, LowerContext, lookup
from minigraph.graph.basic import Constant, graph_inputs, toposort
from minigraph.printing.text import Namer, constant_text, escape

#: elements of work from which a kernel's parallel variant runs
PARALLEL_THRESHOLD = 1 << 18


def num_threads() -> int:
    """Threads for parallel kernels: ``MINIGRAPH_NUM_THREADS``, else numba's default."""
    import numba

    env = os.environ.get("MINIGRAPH_NUM_THREADS")
    n = numba.config.NUMBA_NUM_THREADS
    if env:
        try:
            n = max(1, min(int(env), numba.config.NUMBA_NUM_THREADS))
        except ValueError:
            raise ValueError(f"MINIGRAPH_NUM_THREADS must be an integer, got {env!r}") from None
    numba.set_num_threads(n)
    return n


#: a function whose every step compiles has its whole driver compiled too once it is hot: then a
#: call is one compiled call (no Python between the kernels, a few microseconds instead of about
#: two per step); that compilation takes a second or so, hence not before this many (small) calls
COMPILED_DRIVER_CALLS = 16
#: ...and it runs the calls whose inputs have at most this many elements each (its kernels run
#: serially): on larger ones the Python driver's overhead is negligible, and its kernels parallel
COMPILED_DRIVER_MAX_SIZE = PARALLEL_THRESHOLD


def compiled_driver_after() -> float:
    """Calls before the driver is compiled: ``MINIGRAPH_COMPILED_DRIVER`` (a count, or ``off``),
    else ``COMPILED_DRIVER_CALLS``."""
    env = os.environ.get("MINIGRAPH_COMPILED_DRIVER")
    if not env:
        return COMPILED_DRIVER_CALLS
    if env.strip().lower() == "off":
        return float("inf")
    try:
        return int(env)
    except ValueError:
        raise ValueError(f"MINIGRAPH_COMPILED_DRIVER must be a count of calls or 'off', got {env!r}") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class OutputBuffers:
    """Arrays for the outputs returned to the user, allocated by numpy (huge pages, few page
    faults) and reused once the user has let go of them: two per output, so that the result
    of the previous call may still be held while the next call runs."""

    def __init__(self):
        self.slots: list[list] = []

    # An array is free once the user has let go of it.  References then: the slot, the loop's
    # variable and getrefcount's argument; any more (the user's variable, a view, a shared
    # variable holding it) and the array is not ours.

    def __call__(self, m: int, shape: tuple, dtype) -> np.ndarray:
        """A free array of slot ``m`` with this shape, else a new one (kept in the slot)."""
        pair = self.slots[m]
        for a in pair:
            if a is not None and sys.getrefcount(a) == 3 and a.shape == shape:
                return a
        a = np.empty(shape, dtype)
        pair[0], pair[1] = pair[1], a
        return a

    def copy(self, m: int, value: np.ndarray) -> np.ndarray:
        """``value`` copied into an array of slot ``m``."""
        a = self(m, value.shape, value.dtype)
        a[...] = value
        return a

    # for the compiled driver, every slot at once, with no method call per slot (its calls take
    # a few microseconds of Python in all): the arrays it writes the outputs into (a kernel
    # replaces one whose shape no longer fits), then the arrays it handed out

    def free_all(self, defaults: tuple) -> tuple:
        """A free array of each slot, else that slot's entry of ``defaults``."""
        getrefcount = sys.getrefcount
        return tuple([a if a is not None and getrefcount(a) == 3 else b if b is not None and getrefcount(b) == 3 else d
                      for (a, b), d in zip(self.slots, defaults)])

    def keep_all(self, outputs: tuple, positions: list) -> None:
        """Remember in slot m the array ``outputs[positions[m]]``, just handed to the user."""
        for pair, i in zip(self.slots, positions):
            a = outputs[i]
            if a is not pair[0] and a is not pair[1]:
                pair[0], pair[1] = pair[1], a


class KernelRecord:
    """One kernel of a compiled function: its nodes, kind, name and source (for printing)."""

    def __init__(self, nodes, kind, name, source=None, passes=None):
        self.nodes, self.kind, self.name, self.source, self.passes = nodes, kind, name, source, passes


def expand(fgraph):
    """The nodes to run, with composite ops that have no lowering replaced by their inner
    graph; returns (list of (node, input variables)), alias map id(var) -> replacement."""
    alias: dict[int, object] = {}
    order = []

    def resolve(v):
        while id(v) in alias:
            v = alias[id(v)]
        return v

    def visit(nodes):
        for node in nodes:
            ins = [resolve(v) for v in node.inputs]
            if lookup(node.op) is None and hasattr(node.op, "inline"):
                outs = node.op.inline(ins)
                visit(toposort(outs, stop_at=ins))
                for o, n in zip(node.outputs, outs):
                    alias[id(o)] = resolve(n)
            else:
                order.append((node, ins))

    visit(fgraph.toposort())
    return order, resolve


class NumbaLinker:
    """Compiles ``fgraph`` into a thunk: ``thunk(input values) -> output values``."""

    def __init__(self, fgraph, profile=None, nan_guard=False, observer=None):
        self.fgraph = fgraph
        self.observer = observer  # observer(node, inputs, outputs) after every kernel (debug mode)
        self.profile = profile
        self.nan_guard = nan_guard
        self._reference = None
        self._warned = False
        order, resolve = expand(fgraph)
        self._records: list[KernelRecord] = []
        self._kernel_sources: list[tuple[str, str]] = []
        self._build(order, resolve)

    # --- code generation -------------------------------------------------------------------

    def _build(self, order, resolve):
        fgraph = self.fgraph
        reserved = {"np", "inputs", "_b", "_c", "_z", "_nt", "_T", "_pc", "_prof", "_guard", "_n", "_keys", "_t0", "_st", "_out"}
        reserved |= set(cache.HEADER_NAMES)  # the compiled driver's module imports these
        reserved |= {f"_k{i}{s}" for i in range(len(order)) for s in "sp"}
        reserved |= {f"R{i}" for i in range(4 * len(order) + 8)}
        namer = Namer(reserved=reserved)
        for v in graph_inputs(fgraph.outputs, stop_at=fgraph.inputs):
            if not isinstance(v, Constant):
                namer(v)
        for v in fgraph.inputs:
            namer(v)
        ctx = LowerContext()
        nt = num_threads()
        ns: dict = {"np": np, "_b": [], "_c": [], "_z": [], "_nt": nt, "_T": PARALLEL_THRESHOLD,
                    "_pc": time.perf_counter, "_prof": self.profile, "_n": [], "_keys": []}
        hooks = []
        if self.nan_guard:
            from minigraph.backends.python import check_finite

            hooks.append(check_finite)
        if self.observer is not None:
            hooks.append(self.observer)
        if hooks:
            def guard(node, inputs, outputs):
                for hook in hooks:
                    hook(node, inputs, outputs)

            ns["_guard"] = guard
        outputs = [resolve(v) for v in fgraph.outputs]
        out_ids = {id(v) for v in outputs}
        const_slots: dict[int, str] = {}
        uses: dict[int, int] = {}
        for node, ins in order:
            for v in ins:
                uses[id(v)] = uses.get(id(v), 0) + 1
        for v in outputs:
            uses[id(v)] = uses.get(id(v), 0) + 1
        # update outputs that may overwrite their shared variable (marked by the in-place rewrite)
        update_of = {id(outputs[o]): resolve(fgraph.inputs[i]) for o, i in getattr(fgraph, "inplace_updates", ())}
        ns["_st"] = np.zeros(1, np.int64)  # (an array: the compiled driver sets it too)
        ns["_out"] = OutputBuffers()
        kernel_outputs: set[int] = set()
        view_outputs: set[int] = set()  # outputs of views: of a buffer, an input, a shared value...
        # the compiled driver: the same steps as one numba function (None once a step has no
        # compiled form); the loops it calls (name -> (Kernel, whether built with a parallel
        # variant)); which variable holds each buffer after the call
        jit = [] if self.profile is None and not hooks else None
        self._jit_after = compiled_driver_after()
        self._jit_blocker = "profiling or checking every node" if jit is None else None
        jit_calls: dict[str, tuple] = {}
        holders: dict[str, str] = {}

        def no_jit(reason):
            nonlocal jit
            if jit is not None:
                jit, self._jit_blocker = None, reason

        def ref(v):
            v = resolve(v)
            if isinstance(v, Constant):
                if id(v) not in const_slots:
                    ns["_c"].append(np.asarray(v.data, dtype=v.type.dtype))
                    const_slots[id(v)] = f"_c[{len(ns['_c']) - 1}]"
                return const_slots[id(v)]
            return namer(v)

        z_outputs = []  # the output each _z entry is for

        def buffer(v):
            arr = np.empty((0,) * v.type.ndim, dtype=v.type.dtype)
            if id(v) in out_ids:  # outputs go to the user: always a fresh array
                ns["_z"].append(arr)
                z_outputs.append(v)
                return f"_z[{len(ns['_z']) - 1}]", None
            ns["_b"].append(arr)
            slot = f"_b[{len(ns['_b']) - 1}]"
            return slot, slot

        def in_place(node, j, ins, stmts):
            """The input whose buffer output ``j`` takes over, or None (not in debug mode: the
            check reruns each node on its inputs afterwards)."""
            if self.observer is not None:
                return None
            v = self._inplace_input(node, j, ins, outputs, out_ids, kernel_outputs, uses, update_of)
            if v is not None and id(node.outputs[j]) in update_of:
                stmts.append("_st[0] = 1  # a shared value is overwritten from here on")
            return v

        def written_in_place(node, ins, kernel, stmts):
            """The input each output overwrites (or None), and ``kernel`` writing them so, where
            the kernel has such a form (else ``kernel`` itself)."""
            targets = [in_place(node, j, ins, stmts) for j in range(len(node.outputs))]
            pairs = {j: next(i for i, v in enumerate(ins) if v is t) for j, t in enumerate(targets) if t is not None}
            if pairs and kernel.in_place is not None:
                kernel = dataclasses.replace(kernel, source=kernel.in_place(pairs), in_place=None)
            return targets, kernel

        body = ["def run(inputs):"]
        names = [namer(v) for v in fgraph.inputs]
        if names:
            body.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = inputs")
        for k, (node, ins) in enumerate(order):
            args = [ref(v) for v in ins]
            outs = [namer(o) for o in node.outputs]
            fmt = {f"i{j}": a for j, a in enumerate(args)}
            comment = (f"{', '.join(outs)} = {escape(_one_line(node.op))}({', '.join(_arg_text(namer, v) for v in ins)})"
                       f" :: {', '.join(str(o.type) for o in node.outputs)}")
            body.append(f"    # {comment}")
            fn = lookup(node.op)
            lowered = fn(node, ctx) if fn is not None else None
            if lowered is None:
                lowered = self._fallback(node, ctx)
            ns.update(ctx.refs)
            stmts, stores, jit_stmts = [], [], []
            target = ", ".join(outs) + ("," if len(outs) == 1 else "")
            if isinstance(lowered, Kernel):
                targets, lowered = written_in_place(node, ins, lowered, stmts)
                serial, par = cache.build(lowered.source, fastmath=lowered.fastmath, parallel=lowered.parallel)
                ns[f"_k{k}s"], ns[f"_k{k}p"] = serial, par
                bufs, jit_bufs = [], []
                for j, (o, target_in) in enumerate(zip(node.outputs, targets)):
                    if target_in is not None:  # written into that input's own buffer
                        bufs.append(ref(target_in))
                        jit_bufs.append(ref(target_in))
                        continue
                    b, store = buffer(o)
                    jit_bufs.append(b)  # (the compiled driver allocates the user's outputs itself)
                    if id(o) in out_ids and lowered.out_shapes:  # for the user: allocated by numpy
                        ns["_out"].slots.append([None, None])
                        b = (f"_out({len(ns['_out'].slots) - 1}, {lowered.out_shapes[j].format(**fmt)}, "
                             f"np.{np.dtype(o.type.dtype).name})")
                    bufs.append(b)
                    if store:
                        stores.append(f"{store} = {namer(o)}")
                        holders[store] = namer(o)
                call_args = ", ".join(args + bufs)
                jit_args = ", ".join(args + jit_bufs)
                jit_stmts += stmts  # (the flag of an update in place, if any)
                if lowered.parallel and nt > 1:
                    work = lowered.work.format(**fmt)
                    stmts += [f"if {work} >= _T:",
                              f"    {target} = _k{k}p(_nt, {call_args})",
                              "else:",
                              f"    {target} = _k{k}s(1, {call_args})"]
                else:
                    stmts.append(f"{target} = _k{k}s(1, {call_args})")
                jit_stmts.append(f"{target} = _k{k}s(1, {jit_args})")  # (small calls only: serial)
                jit_calls[f"_k{k}s"] = (lowered, lowered.parallel)
                name = f"k{k}"
                kernel_outputs.update(id(o) for o in node.outputs)
                self._kernel_sources.append((name, lowered.source))
                record = KernelRecord([node], lowered.kind, f"{name} {lowered.kind} {_one_line(node.op)}",
                                      lowered.source, lowered.passes)
            else:
                for j, o in enumerate(node.outputs):
                    if not lowered.buffers:
                        continue
                    target_in = in_place(node, j, ins, stmts)
                    if target_in is not None:
                        fmt[f"b{j}"] = ref(target_in)
                        continue
                    b, store = buffer(o)
                    fmt[f"b{j}"] = b
                    if store:
                        stores.append(f"{store} = {namer(o)}")
                        holders[store] = namer(o)
                expr = lowered.expr.format(**fmt)
                if lowered.kind == "view":
                    view_outputs.update(id(o) for o in node.outputs if o.type.ndim)
                jit_stmts += stmts  # (the flag of an update in place, if any)
                stmts.append(f"{', '.join(outs)} = {expr}")
                if lowered.jit is not None:
                    jit_stmts.append(f"{', '.join(outs)} = {lowered.jit.format(**fmt)}")
                elif lowered.kernel is not None and jit is not None:  # a loop, built with the compiled driver
                    jit_bufs = []
                    loop = lowered.kernel() if callable(lowered.kernel) else lowered.kernel
                    targets, loop = written_in_place(node, ins, loop, jit_stmts)
                    for o, target_in in zip(node.outputs, targets):
                        if target_in is not None:  # (a shared variable's update)
                            jit_bufs.append(ref(target_in))
                            continue
                        b, store = buffer(o)
                        jit_bufs.append(b)
                        if store:
                            holders[store] = namer(o)
                    jit_stmts.append(f"{target} = _k{k}s(1, {', '.join(args + jit_bufs)})")
                    jit_calls[f"_k{k}s"] = (loop, False)
                elif lowered.kernel is None:
                    no_jit(f"{_one_line(node.op)} (no compiled form)")
                record = KernelRecord([node], lowered.kind, f"{lowered.kind} {_one_line(node.op)}", lowered.source)
                if lowered.source:
                    self._kernel_sources.append((f"k{k} (numpy)", lowered.source))
            if self.profile is not None:
                ns["_keys"].append(record.name)
                stmts = ["_t0 = _pc()"] + stmts + [f"_prof.record(_keys[{len(ns['_keys']) - 1}], _pc() - _t0)"]
            if hooks:
                ns["_n"].append(node)
                stmts.append(f"_guard(_n[{len(ns['_n']) - 1}], [{', '.join(args)}], [{', '.join(outs)}])")
            body += ["    " + s for s in stmts + stores]
            if jit is not None:
                jit += [f"    # {comment}"] + ["    " + s for s in jit_stmts]
            self._records.append(record)
        # what each driver returns.  Outputs straight from a kernel are arrays of their own
        # (never buffered), and a user's output that is a view is copied here into an array of its
        # own (reused once let go of, as a kernel's): mg.function need not copy either (the first
        # time each appears), and that copy would cost more there
        results, jit_results, seen_out = [], [], set()
        self.fresh_outputs = []
        for v in outputs:
            first = id(v) not in seen_out
            seen_out.add(id(v))
            results.append(ref(v))
            jit_results.append(ref(v))
            self.fresh_outputs.append(first and (id(v) in kernel_outputs or id(v) in view_outputs))
            if first and id(v) in view_outputs:
                ns["_out"].slots.append([None, None])
                results[-1] = f"_out.copy({len(ns['_out'].slots) - 1}, {ref(v)})"
                jit_results[-1] = f"copy_into({buffer(v)[0]}, {ref(v)})"
        if any("_st[0] = 1" in line for line in body):
            body.insert(1, "    _st[0] = 0  # set once a shared value is overwritten in place")
        if any(r.kind == "vector" for r in self._records):
            # numpy's elementwise arithmetic does not warn, as in the reference interpreter
            body[1:] = ["    with np.errstate(all='ignore'):"] + ["    " + line for line in body[1:]]
        if self.profile is not None:
            body.append("    _prof.function_calls += 1")
        body.append(f"    return [{', '.join(results)}]")
        self._driver_source = "\n".join(body) + "\n"
        self._jit_source = self._jit = None
        if jit is not None:
            slots = [f"_b[{i}]" for i in range(len(ns["_b"]))]
            head = [f"def driver({', '.join(names + ['_b', '_c', '_z', '_st'])}):"]
            if any("_st[0] = 1" in line for line in jit):
                head.append("    _st[0] = 0  # set once a shared value is overwritten in place")
            # the buffers go back to Python only when a kernel replaced one (a new shape)
            moved = [f"{holders[s]}.ctypes.data != {s}.ctypes.data" for s in slots if s in holders]
            tail = ([f"    if {' or '.join(moved)}:",
                     f"        return {tuple_expr(jit_results)}, {tuple_expr([holders.get(s, s) for s in slots])}"]
                    if moved else [])
            tail.append(f"    return {tuple_expr(jit_results)}, None")
            self._jit_source = "\n".join(head + jit + tail) + "\n"
            self._jit_calls = jit_calls
            self._calls, self._jit_buffers = 0, None
            # the user's outputs are reused as in the Python driver (once let go of): each _z
            # entry's position among the results, and the arrays handed out from it
            self._jit_results = [next(i for i, o in enumerate(outputs) if o is v) for v in z_outputs]
            self._jit_out = OutputBuffers()
            self._jit_out.slots = [[None, None] for _ in z_outputs]
        code = compile(self._driver_source, "<minigraph driver>", "exec")
        exec(code, ns)
        self._run = ns["run"]
        self._ns = ns

    @staticmethod
    def _inplace_input(node, j, ins, outputs, out_ids, kernel_outputs, uses, update_of):
        """The input whose buffer output ``j`` of an elementwise node or a gemm may overwrite, or None.

        Honours the ``inplace`` marks of the in-place rewrite where the buffer is ours to
        overwrite: a shared variable being updated (``fgraph.inplace_updates``), or an
        intermediate made by a kernel, read by this node only and not returned to the user.
        """
        pairs = dict(getattr(node.op, "inplace", ()) or ())
        if j not in pairs:
            return None
        v, o = ins[pairs[j]], node.outputs[j]
        if v.type.dtype != o.type.dtype or [s == 1 for s in v.type.shape] != [s == 1 for s in o.type.shape]:
            return None
        if sum(1 for u in ins if u is v) != 1:
            return None
        if id(o) in update_of:
            return v if update_of[id(o)] is v else None
        if id(v) in kernel_outputs and uses.get(id(v)) == 1 and id(o) not in out_ids and id(v) not in out_ids:
            return v
        return None

    def _fallback(self, node, ctx):
        warnings.warn(f"numba backend: no lowering for {type(node.op).__name__} ({_one_line(node.op)}); "
                      f"it runs its numpy perform", stacklevel=4)
        args = ", ".join(f"{{i{k}}}" for k in range(len(node.inputs)))
        expr = f"{ctx.ref(node.op)}.perform({ctx.ref(node)}, [{args}])"
        return Inline(expr + ("[0]" if len(node.outputs) == 1 else ""), kind="fallback")

    # --- running ---------------------------------------------------------------------------

    def __call__(self, inputs):
        jit = self._jit
        # only calls the compiled driver would run count towards compiling it
        small = self._jit_source is not None and max([a.size for a in inputs], default=0) <= COMPILED_DRIVER_MAX_SIZE
        if small and jit is None:
            self._calls += 1
            if self._calls > self._jit_after:
                jit = self._build_jit(inputs)
        try:
            if small and jit is not None:
                out, buffers = self._jit_out, self._jit_buffers
                if buffers is None:
                    buffers = self._jit_buffers = tuple(self._ns["_b"])
                outs, moved = jit(*inputs, buffers, self._jit_constants, out.free_all(self._jit_fresh), self._ns["_st"])
                if moved is not None:
                    self._ns["_b"][:] = self._jit_buffers = moved
                out.keep_all(outs, self._jit_results)
                return list(outs)
            self._jit_buffers = None  # the Python driver may replace buffers
            return self._run(inputs)
        except Exception as exc:  # rerun on the reference: its error names the node
            if self._ns["_st"][0]:
                raise RuntimeError(f"numba backend: a kernel failed after shared variables were updated in place "
                                   f"({_one_line(exc)})") from exc
            # copies: the reference may return views of inputs where fresh arrays are promised
            outs = [np.array(o, copy=True) if isinstance(o, np.ndarray) else o for o in self._reference_run(inputs)]
            if not self._warned:
                self._warned = True
                warnings.warn(f"numba backend: a compiled kernel failed ({_one_line(exc)}); this call ran on "
                              f"the reference interpreter (a length 1 known only at run time?)", stacklevel=3)
            return outs

    def _build_jit(self, inputs):
        """Compile the driver (once the function is hot), with the kernels it calls, for these
        inputs' types.  A failure leaves the Python driver in charge."""
        import numba

        try:
            # the loops it calls (the Python driver's are built already: found in memory), and
            # their cache keys in its module, since a module's cache key is its text
            env = {name: cache.build(k.source, fastmath=k.fastmath, parallel=par)[0]
                   for name, (k, par) in self._jit_calls.items()}
            keys = "".join(f"# {name}: kernel k_{cache.kernel_key(k.source, k.fastmath, par)}\n"
                           for name, (k, par) in sorted(self._jit_calls.items()))
            # (indices are checked: an index out of range raises, and the reference names it)
            jit = cache.build(keys + self._jit_source, parallel=False, env=env, name="driver", boundscheck=True)[0]
            self._jit_constants, self._jit_fresh = tuple(self._ns["_c"]), tuple(self._ns["_z"])
            args = list(inputs) + [tuple(self._ns["_b"]), self._jit_constants, self._jit_fresh, self._ns["_st"]]
            jit.compile(tuple(numba.typeof(a) for a in args))
        except Exception as exc:
            self._jit_source, self._jit_blocker = None, f"it failed to compile ({_one_line(exc)[:200]})"
            warnings.warn(f"numba backend: the compiled driver failed to build ({_one_line(exc)[:200]}); "
                          f"the Python driver runs this function", stacklevel=3)
            return None
        self._jit = jit
        return jit

    def _reference_run(self, inputs):
        if self._reference is None:
            from minigraph.backends.python import PythonLinker

            self._reference = PythonLinker(self.fgraph, profile=None, nan_guard=self.nan_guard)
        return self._reference(inputs)

    # --- looking at it -----------------------------------------------------------------------

    def source(self) -> str:
        """The driver, the compiled driver (when the function has one) and every kernel's source."""
        parts = ["# driver: runs the kernels in order", self._driver_source]
        if self._jit_source is not None:
            parts += [f"# compiled driver: the same steps compiled, for calls on inputs of up to "
                      f"{COMPILED_DRIVER_MAX_SIZE} elements, after {self._jit_after} such calls",
                      self._jit_source]
            shown = {src for _, src in self._kernel_sources}
            for name, (k, _) in self._jit_calls.items():
                if k.source not in shown:  # the loops it runs in place of numpy calls
                    parts.append(f"# {name[1:-1]} (in the compiled driver)\n{k.source}")
        seen = set()
        for name, src in self._kernel_sources:
            if src in seen:
                parts.append(f"# {name}: same kernel as above\n")
                continue
            seen.add(src)
            parts.append(f"# {name}\n{src}")
        return "\n".join(parts)

    def kernels(self) -> list[KernelRecord]:
        """The kernels in execution order (see ``minigraph.printing.kernels``)."""
        return list(self._records)


def _arg_text(namer, v) -> str:
    if isinstance(v, Constant) and not v.name:
        return _one_line(constant_text(v))
    return escape(namer(v)) if not isinstance(v, Constant) else escape(v.name)
