"""In-place marking: which results may overwrite a buffer instead of allocating one.

Two representations, both read by the backends (the python reference ignores them):

- ``Elemwise.inplace``: ``(output, input)`` pairs; the elementwise node writes that output
  into that input's buffer.  Marked only where it is safe: the input has the output's shape
  (same static lengths or the same symbolic lengths), dtype and broadcast pattern; it is
  used by this node only, at one position, and is not a graph output; it is not a graph
  input nor a constant; and it was made by an op that returns a fresh array (not a view
  such as ``dimshuffle``, ``subtensor`` or ``reshape``, whose buffer belongs to another
  variable).
- ``FunctionGraph.inplace_updates``: a tuple of ``(output_index, input_index)`` pairs: the
  update of a shared variable (the output) may be written into that shared variable's own
  buffer (the input).  The node computing the update is an elementwise op or a gemm (whose
  ``z`` it is) reading the shared variable, marked ``inplace`` on it.  Safe when every
  other reader of the shared variable (directly or through views) runs before the update
  node: an ancestor of it does; any other reader (the backward pass's ``dot(g, W.T)`` beside
  the update of ``W``) is made to, through ``FunctionGraph.order_constraints``, where the
  update's result is read by nothing but the function's outputs (so the update can run
  last).  The node must read the shared variable once and not through a view as well
  (``W - W.T`` would read what it has already overwritten), and the shared variable must
  not be returned as an output.

``Gemm.inplace`` has the same form as ``Elemwise.inplace``: ``((0, 0),)`` writes into ``z``.
"""
from __future__ import annotations

import dataclasses

from minigraph.graph.basic import Apply, Constant
from minigraph.rewriting.framework import apply_replacement
from minigraph.rewriting.shapes import shape_keys
from minigraph.tensor import elemwise as E
from minigraph.tensor import shape_ops as S
from minigraph.tensor import subtensor as ST
from minigraph.tensor.blas import Gemm

#: ops that return a fresh array, never a view of an input (a dimshuffle, subtensor,
#: reshape or sum_to_shape may return a view; unknown ops are not trusted)
_VIEW_OPS = (E.DimShuffle, ST.Subtensor, S.Reshape, S.SumToShape, S.SpecifyShape)


def _fresh(v) -> bool:
    from minigraph.tensor import math as M
    from minigraph.tensor.nnet import basic as NN

    fresh_ops = (E.Elemwise, M.Reduce, M.FusedReduce, M.Dot, Gemm, S.Alloc, S.Join, S.Repeat, ST.IncSubtensor,
                 ST.AdvancedIncSubtensor, ST.AdvancedSubtensor, NN.Softmax, NN.LogSoftmax, NN.SoftmaxCrossEntropy)
    node = v.owner
    if node is not None and isinstance(node.op, E.Elemwise) and len(node.inputs) == 1 \
            and isinstance(node.op.scalar_op, (E.Add, E.Mul)):
        return False  # a one-operand add or mul returns its operand itself
    return node is not None and isinstance(node.op, fresh_ops)


def _writable(node) -> tuple:
    """Positions of the inputs whose buffer an output of ``node`` may take over: any input of
    an elementwise op (not yet marked), a gemm's ``z``."""
    if isinstance(node.op, E.Elemwise) and not node.op.inplace:
        return tuple(range(len(node.inputs)))
    if isinstance(node.op, Gemm) and not node.op.inplace:
        return (0,)
    return ()


def _mark(fgraph, log, node, pairs, rule) -> bool:
    op = dataclasses.replace(node.op, inplace=tuple(pairs))
    # same inputs, same output types: no need to infer them again
    new = Apply(op, list(node.inputs), [o.type for o in node.outputs], trace=node.trace)
    if hasattr(node, "step_traces"):
        new.step_traces = node.step_traces
    return apply_replacement(fgraph, log, rule, list(zip(node.outputs, new.outputs)))


def _readers(fgraph, v):
    """Nodes that read ``v`` directly or through views; None if ``v`` (or a view) is an output."""
    found, stack = [], [v]
    while stack:
        u = stack.pop()
        for client, _ in fgraph.clients.get(u, ()):
            if client == "output":
                return None
            found.append(client)
            if isinstance(client.op, _VIEW_OPS):
                stack.extend(client.outputs)
    return found


def _ancestors(node) -> set:
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        for i in n.inputs:
            o = i.owner
            if o is not None and o not in seen:
                seen.add(o)
                stack.append(o)
    return seen


def _readers_first(fgraph) -> dict:
    """{update node: the other readers of the shared variable it overwrites} (they run first)."""
    after = {}
    for o, i in fgraph.inplace_updates:
        node = fgraph.outputs[o].owner
        after[node] = [r for r in _readers(fgraph, fgraph.inputs[i]) or () if r is not node]
    return after


def inplace(fgraph, log) -> int:
    """Mark shared-variable updates and dead elementwise inputs for in-place computation."""
    keys = shape_keys(fgraph)
    changes = 0
    updates = []
    graph_inputs = set(fgraph.inputs)
    # updates of shared variables first: they are the big win (no new weight buffer per step)
    for out_index, in_index in sorted(fgraph.update_map.items()):
        shared = fgraph.inputs[in_index]
        value = fgraph.outputs[out_index]
        node = value.owner
        writable = _writable(node) if node is not None else ()
        if not writable or len(node.outputs) != 1:
            continue
        if fgraph.outputs.count(value) != 1 or value.type != shared.type:
            continue
        positions = [i for i, v in enumerate(node.inputs) if v is shared]
        if len(positions) != 1 or positions[0] not in writable or not keys.same_shape(shared, value):
            continue
        readers = _readers(fgraph, shared)
        if readers is None or readers.count(node) != 1:  # (also read through a view)
            continue
        before = _ancestors(node)
        if any(r is not node and r not in before for r in readers) and \
                any(c != "output" for c, _ in fgraph.clients[value]):
            continue  # another reader would have to run first, but the update is read itself
        if _mark(fgraph, log, node, [(0, positions[0])], "inplace_update"):
            changes += 1
            updates.append((out_index, in_index))
    fgraph.inplace_updates = tuple(updates)
    fgraph.constrain_order(_readers_first if updates else None)
    for node in fgraph.toposort():
        writable = _writable(node) if node in fgraph.nodes else ()
        if not writable:
            continue
        pairs, used = [], set()
        for o, out in enumerate(node.outputs):
            for i in writable:
                inp = node.inputs[i]
                if i in used or isinstance(inp, Constant) or inp in graph_inputs or not _fresh(inp):
                    continue
                if inp.type != out.type or len(fgraph.clients.get(inp, ())) != 1:
                    continue
                if not keys.same_shape(inp, out):
                    continue
                pairs.append((o, i))
                used.add(i)
                break
        if pairs and _mark(fgraph, log, node, pairs, "inplace_elemwise"):
            changes += 1
    return changes
