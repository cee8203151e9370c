"""Compiling a trained model for inference: parameters frozen, batch norm folded away.

``compile_inference(model)`` builds the model's inference graph (population statistics, no
dropout), replaces every shared variable it reads (weights, batch-norm parameters and running
statistics) by a constant holding its current value, and compiles it with the
``"fast_run_fold_bn"`` pipeline: the batch-norm folding rules
(``minigraph.rewriting.bn_folding``) first, then the usual rewrites.  Each fold is in
``f.rewrite_log``; the result has no batch-norm arithmetic left.  Later changes to the
model's parameters do not reach a compiled inference function: compile it again.
"""
from __future__ import annotations

import minigraph.tensor as T
from minigraph.compile.function import function
from minigraph.compile.shared import SharedVariable
from minigraph.graph.basic import clone_replace, graph_inputs


def freeze(outputs: list) -> list:
    """Copies of ``outputs`` in which every shared variable is a constant of its current value."""
    shared = [v for v in graph_inputs(outputs) if isinstance(v, SharedVariable)]
    replace = {v: T.constant(v.get_value(borrow=False), name=v.name, dtype=v.dtype) for v in shared}
    return clone_replace(outputs, replace)


def compile_inference(model, fold_batch_norm: bool = True, mode: str | None = None, output: str = "probs",
                      freeze_params: bool = True, input_ndim: int = 2, name: str = "inference"):
    """The inference function ``f(x)`` of ``model`` (anything with ``model(x, training=False)``
    and ``logits``, e.g. :class:`minigraph.nn.MLP` or :class:`minigraph.nn.Sequential`).

    ``output``: "probs" (the model's output), "logits" or "classes" (argmax).
    ``fold_batch_norm``: fold batch norms into neighbouring dense/conv layers (logged in
    ``f.rewrite_log``).  ``freeze_params``: treat the parameters as constants, so that the
    folded weights are computed once at compile time.
    """
    x = T.tensor(None, (None,) * input_ndim, name="x")
    if output == "probs":
        out = model(x, training=False)
    elif output == "logits":
        out = model.logits(x, training=False)
    elif output == "classes":
        out = T.argmax(model.logits(x, training=False), axis=1)
    else:
        raise ValueError(f"compile_inference: output must be 'probs', 'logits' or 'classes', got {output!r}")
    if freeze_params:
        (out,) = freeze([out])
    rewrites = "fast_run_fold_bn" if fold_batch_norm else "fast_run"
    return function([x], out, mode=mode, name=name, rewrites=rewrites)


__all__ = ["compile_inference", "freeze"]
