"""Fusion: elementwise regions become one ``Elemwise(Composite)`` node, and reductions
absorb the elementwise computation that feeds them (``FusedReduce``).

Reduction fusion runs first.  For each sum (prod, max, min) the elementwise producers of
its input that have the input's full shape are pulled into the reduction's scalar program.
A producer used elsewhere too is copied into the program when it is cheap arithmetic (it
stays in the graph for its other users): ``sum((x - mean) ** 2)`` then reads ``x`` and
``mean`` and never stores ``x - mean``.  Reductions over the same axes of inputs of the same
shape that share an input are then grouped into one node with several outputs (batch
norm's ``sum(dy)`` and ``sum(dy * xhat)``, one pass over ``dy``).

Elementwise fusion then grows regions from the outputs towards the inputs: a producer
joins its consumer's region when it is elementwise and computes a result of the same shape
(a statistic of shape ``[1, n]`` feeding a ``[m, n]`` region stays outside, computed once
instead of ``m`` times).  A producer whose result is also used outside the region becomes an
extra output of the fused node, unless that would make a cycle (an outside path from the
region back into it).  Regions of a single node are left as they are.

A fused node's ``trace`` is the user's line of its last (elementwise) or first (reduction)
node; ``node.step_traces`` holds the line of each step of its scalar program, for messages
about one step (the NaN guard).
"""
from __future__ import annotations

from minigraph.graph.basic import Constant
from minigraph.rewriting.framework import apply_replacement
from minigraph.rewriting.shapes import shape_keys
from minigraph.tensor import elemwise as E
from minigraph.tensor import math as M

#: scalar ops cheap enough to compute twice rather than store (copied into reductions)
CHEAP = (E.Add, E.Sub, E.Mul, E.Neg, E.Cast, E.Identity, E.Sqr, E.Abs, E.TrueDiv, E.Maximum, E.Minimum,
         E.Switch, E.LT, E.GT, E.LE, E.GE, E.EQ, E.NEQ)
#: the largest scalar program a fused node gets
MAX_PROGRAM = 64
_KINDS = {M.Sum: "add", M.Prod: "mul", M.Max: "max", M.Min: "min"}


def _fusable(node) -> bool:
    return isinstance(node.op, E.Elemwise) and not node.op.inplace


def _pattern(v) -> tuple:
    """Which axes have static length 1 (a value broadcast along them)."""
    return tuple(s == 1 for s in v.type.shape)


def _program_size(node) -> int:
    op = node.op.scalar_op
    return len(op.program) if isinstance(op, E.Composite) else 1


def build_composite(nodes, wanted, traces: list | None = None):
    """The Composite computing ``wanted`` from the nodes (in topological order) and the list
    of outer inputs it reads; ``traces``, if given, receives the user's line of each step."""
    produced = {o for n in nodes for o in n.outputs}
    inputs, index = [], {}
    for n in nodes:
        for v in n.inputs:
            if v not in produced and v not in index:
                index[v] = len(inputs)
                inputs.append(v)
    for v in wanted:  # a wanted value that is an input (identity reduction)
        if v not in produced and v not in index:
            index[v] = len(inputs)
            inputs.append(v)
    slots = dict(index)
    program = []
    step_traces = traces if traces is not None else []
    n_in = len(inputs)
    for n in nodes:
        op = n.op.scalar_op
        args = [slots[v] for v in n.inputs]
        if isinstance(op, E.Composite):
            local = list(args)
            inner = getattr(n, "step_traces", None) or [n.trace] * len(op.program)
            for (sub_op, sub_args), trace in zip(op.program, inner):
                program.append((sub_op, tuple(local[a] for a in sub_args)))
                local.append(n_in + len(program) - 1)
                step_traces.append(trace)
            for o, out_slot in zip(n.outputs, op.outputs):
                slots[o] = local[out_slot]
        else:
            program.append((op, tuple(args)))
            slots[n.outputs[0]] = n_in + len(program) - 1
            step_traces.append(n.trace)
    outs = []
    for v in wanted:
        s = slots[v]
        if s < n_in:  # never return an input itself: outputs are fresh arrays
            program.append((E.Identity(), (s,)))
            s = n_in + len(program) - 1
            step_traces.append(None)
        outs.append(s)
    comp = E.Composite(n_in, tuple(program), tuple(outs), tuple(v.dtype for v in inputs))
    return comp, inputs


def _reaches(fgraph, starts, targets, limit) -> bool:
    """Some node reachable downwards from ``starts`` (nodes) is in ``targets``; nodes at
    positions past ``limit`` cannot lead back and are not explored."""
    pos = fgraph._fusion_pos
    seen, stack = set(), list(starts)
    while stack:
        n = stack.pop()
        if n in targets:
            return True
        if n in seen or pos.get(n, limit + 1) > limit:
            continue
        seen.add(n)
        for o in n.outputs:
            for c, _ in fgraph.clients.get(o, ()):
                if c != "output":
                    stack.append(c)
    return False


def _set_positions(fgraph):
    fgraph._fusion_pos = {n: i for i, n in enumerate(fgraph.toposort())}


def _external_inputs(nodes) -> list:
    produced = {o for n in nodes for o in n.outputs}
    seen, out = set(), []
    for n in nodes:
        for v in n.inputs:
            if v not in produced and v not in seen:
                seen.add(v)
                out.append(v)
    return out


def _acyclic(fgraph, proposals) -> bool:
    """Whether replacing, for each proposal ``(removed_nodes, input_variables)``, the removed
    nodes by one new node reading those inputs leaves the graph without cycles (Kahn)."""
    group = {}
    for k, (removed, _) in enumerate(proposals):
        for n in removed:
            group[n] = ("fused", k)

    def vertex(v):
        o = v.owner
        return None if o is None or o not in fgraph.nodes else group.get(o, o)

    preds = {}
    for n in fgraph.nodes:
        if n not in group:
            preds[n] = {u for u in map(vertex, n.inputs) if u is not None}
    for k, (_, ins) in enumerate(proposals):
        preds[("fused", k)] = {u for u in map(vertex, ins) if u is not None}
    succs: dict = {v: [] for v in preds}
    for v, ps in preds.items():
        for u in ps:
            succs[u].append(v)
    indegree = {v: len(ps) for v, ps in preds.items()}
    ready = [v for v, d in indegree.items() if d == 0]
    done = 0
    while ready:
        u = ready.pop()
        done += 1
        for v in succs[u]:
            indegree[v] -= 1
            if indegree[v] == 0:
                ready.append(v)
    return done == len(preds)


def _keep_acyclic(fgraph, proposals) -> list:
    """The proposals, or (rarely, when together they would make a cycle) as many of them as
    can be taken one by one without one."""
    if _acyclic(fgraph, proposals):
        return list(range(len(proposals)))
    kept = []
    for k in range(len(proposals)):
        if _acyclic(fgraph, [proposals[i] for i in kept + [k]]):
            kept.append(k)
    return kept


# --- reductions ------------------------------------------------------------------------------

def _reduction_region(fgraph, node):
    """The elementwise producers (topological order) pulled into reduction ``node``."""
    keys = shape_keys(fgraph)
    x = node.inputs[0]
    region, members, size = [], set(), 0
    stack = [x]
    while stack:
        v = stack.pop()
        p = v.owner
        if p is None or p in members or not _fusable(p) or p not in fgraph.nodes:
            continue
        # computed in the reduction's loop, at the loop's shape: same broadcast pattern
        # (a [1, n] statistic is not recomputed for every row)
        if len(p.outputs) != 1 or _pattern(p.outputs[0]) != _pattern(x):
            continue
        clients = fgraph.clients.get(p.outputs[0], ())
        private = all(c is node or c in members for c, _ in clients)
        cheap = isinstance(p.op.scalar_op, CHEAP)
        if not (private or cheap) or size + _program_size(p) > MAX_PROGRAM:
            continue
        region.append(p)
        members.add(p)
        size += _program_size(p)
        stack.extend(p.inputs)
    pos = fgraph._fusion_pos
    region.sort(key=lambda n: pos[n])
    return region


def fuse_reductions(fgraph, log) -> int:
    """Reductions absorb their elementwise producers; reductions sharing inputs are grouped."""
    try:
        return _fuse_reductions(fgraph, log)
    finally:
        fgraph.__dict__.pop("_fusion_pos", None)


def _fuse_reductions(fgraph, log) -> int:
    _set_positions(fgraph)
    pos = fgraph._fusion_pos
    keys = shape_keys(fgraph)
    groups: list[dict] = []
    for node in fgraph.toposort():
        kind = _KINDS.get(type(node.op))
        if kind is None or node.outputs[0].dtype != node.inputs[0].dtype:
            continue
        region = _reduction_region(fgraph, node)
        ins = _external_inputs(region) if region else [node.inputs[0]]
        for g in groups:
            first = g["members"][0][0]
            if first.op.axis != node.op.axis or not keys.same_shape(first.inputs[0], node.inputs[0]):
                continue
            # sharing a constant is no reason to read the data in one pass
            if not any(not isinstance(v, Constant) for v in set(ins) & g["inputs"]):
                continue
            # no member may depend on another (they are computed in one pass)
            reducers = [m[0] for m in g["members"]] + [node]
            limit = max(pos[n] for n in reducers)
            in_nodes = {v.owner for v in g["inputs"] | set(ins) if v.owner is not None}
            if _reaches(fgraph, reducers, in_nodes, limit):
                continue
            g["members"].append((node, kind, region))
            g["inputs"] |= set(ins)
            g["order"].extend(v for v in ins if v not in g["order"])
            break
        else:
            groups.append({"members": [(node, kind, region)], "inputs": set(ins), "order": list(ins)})
    groups = [g for g in groups if len(g["members"]) > 1 or g["members"][0][2]]
    proposals = [({m[0] for m in g["members"]}, g["order"]) for g in groups]
    changes = 0
    for k in _keep_acyclic(fgraph, proposals):
        members = groups[k]["members"]
        nodes = sorted({n for _, _, region in members for n in region}, key=lambda n: pos[n])
        traces: list = []
        comp, ins = build_composite(nodes, [m[0].inputs[0] for m in members], traces)
        op = M.FusedReduce(comp, members[0][0].op.axis, tuple(m[1] for m in members))
        new = op.make_node(*ins)
        new.trace, new.step_traces = members[0][0].trace, tuple(traces)
        outs = new.outputs
        pairs = [(m[0].outputs[0], o) for m, o in zip(members, outs)]
        if apply_replacement(fgraph, log, "reduction_fusion", pairs):
            changes += 1
    return changes


# --- elementwise -----------------------------------------------------------------------------

def _copyable(fgraph, p, out) -> bool:
    """A region copies ``p`` rather than exporting it: batch norm's ``x - mean``, used by the
    output and by the gradient, is then recomputed from ``x`` in both instead of written once
    and read back.  Only cheap arithmetic reading one value of the region's shape, that
    value not itself fusable (so it survives whatever else is fused), and used by fusable
    nodes of the region's shape only (so that every user can copy it and it vanishes)."""
    full = [v for v in p.inputs if v.ndim == out.ndim and _pattern(v) == _pattern(out)]
    if len(p.outputs) != 1 or not isinstance(p.op.scalar_op, CHEAP) or len(full) != 1:
        return False
    if full[0].owner is not None and _fusable(full[0].owner):
        return False
    clients = [c for c, _ in fgraph.clients.get(p.outputs[0], ())]
    if not all(c != "output" and _fusable(c) and all(_pattern(o) == _pattern(out) for o in c.outputs)
               for c in clients):
        return False
    # only when some user's result may differ in shape at run time (a broadcast against a
    # parameter): that user's region can never join the others', so exporting ``p`` would
    # mean a write and a read back; users of one shape are better served by one region
    # exporting ``p`` to the next (the second fusion round merges them into one kernel)
    keys = shape_keys(fgraph)
    return any(not keys.same_shape(o, p.outputs[0]) for c in clients for o in c.outputs)


def _grow(fgraph, seed, taken, copies=None):
    """The region fused around ``seed`` (topological order), avoiding nodes in ``taken``;
    producers the region recomputes but leaves in the graph for their other users are
    added to ``copies``."""
    keys = shape_keys(fgraph)
    pos = fgraph._fusion_pos
    copies = set() if copies is None else copies
    out = seed.outputs[0]
    region, members = [seed], {seed}
    size = _program_size(seed)
    limit, lowest = pos[seed], pos[seed]
    stack = list(reversed(seed.inputs))
    while stack:
        v = stack.pop()
        p = v.owner
        if p is None or p in members or p in taken or not _fusable(p) or p not in fgraph.nodes:
            continue
        if any(o.ndim != out.ndim or _pattern(o) != _pattern(out) for o in p.outputs) \
                or size + _program_size(p) > MAX_PROGRAM:
            continue
        outside = [c for o in p.outputs for c, _ in fgraph.clients.get(o, ()) if c != "output" and c not in members]
        # a value used outside becomes an output of the fused node, which has the region's
        # shape: only when it is known to be the same shape
        exported = outside or any(c == "output" for o in p.outputs for c, _ in fgraph.clients.get(o, ()))
        copy = bool(exported) and _copyable(fgraph, p, out)
        if exported and not copy and not all(keys.same_shape(o, out) for o in p.outputs):
            continue
        # a path leaving the region and coming back would make the fused node depend on itself
        if outside and not copy and _reaches(fgraph, outside, members, limit):
            continue
        if _depends_through_outside(fgraph, p, members, lowest):
            continue
        region.append(p)
        members.add(p)
        if copy:
            copies.add(p)
        lowest = min(lowest, pos[p])
        size += _program_size(p)
        stack.extend(reversed(p.inputs))
    region.sort(key=lambda n: pos[n])
    return region


def _depends_through_outside(fgraph, p, members, lowest) -> bool:
    """``p`` depends on a region member through a node outside the region (walking up from
    ``p``; nodes placed before the earliest member cannot depend on one)."""
    pos = fgraph._fusion_pos
    seen = set()
    stack = [v.owner for v in p.inputs if v.owner is not None and v.owner not in members]
    while stack:
        n = stack.pop()
        if n in seen or pos.get(n, -1) < lowest:
            continue
        seen.add(n)
        for v in n.inputs:
            o = v.owner
            if o is None:
                continue
            if o in members:
                return True
            stack.append(o)
    return False


def fuse_elemwise(fgraph, log) -> int:
    """Replace maximal elementwise regions by single Elemwise(Composite) nodes."""
    try:
        return _fuse_elemwise(fgraph, log)
    finally:
        fgraph.__dict__.pop("_fusion_pos", None)


def _fuse_elemwise(fgraph, log) -> int:
    _set_positions(fgraph)
    taken: set = set()
    grown = []
    for seed in reversed(fgraph.toposort()):
        if seed in taken or not _fusable(seed):
            continue
        copies: set = set()
        region = _grow(fgraph, seed, taken, copies)
        if len(region) >= 2:
            grown.append((region, copies))
            taken.update(n for n in region if n not in copies)
    # a copy whose node another region fuses for real is read from that region's output
    # instead (the copy's own inputs may not survive that region); others stay in the graph
    # for their remaining users, or vanish when every user copied them
    regions, kept_copies = [], []
    for region, copies in grown:
        region = [n for n in region if not (n in copies and n in taken)]
        if len(region) >= 2:
            regions.append(region)
            kept_copies.append(copies)
    proposals = [({n for n in r if n not in c}, _external_inputs(r)) for r, c in zip(regions, kept_copies)]
    changes = 0
    for k in _keep_acyclic(fgraph, proposals):
        region = regions[k]
        members = set(region)
        wanted = [o for n in region if n not in kept_copies[k] for o in n.outputs
                  if any(c == "output" or c not in members for c, _ in fgraph.clients.get(o, ()))]
        traces: list = []
        comp, ins = build_composite(region, wanted, traces)
        new = E.Elemwise(comp).make_node(*ins)
        new.trace, new.step_traces = region[-1].trace, tuple(traces)
        if apply_replacement(fgraph, log, "elemwise_fusion", list(zip(wanted, new.outputs))):
            changes += 1
    return changes
