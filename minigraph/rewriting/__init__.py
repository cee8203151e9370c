"""Graph rewrites: from the raw gradient graph to few, fused, stable nodes.

``rewrite_graph(fgraph, rewrites)`` edits a FunctionGraph in place with a named pipeline
and returns the ``RewriteLog`` of every rule that fired (``f.rewrite_log`` on a compiled
function; ``log.summary()`` for counts per rule and node counts before and after).

Pipelines (each an ordered list of passes; ``Fixpoint`` stages repeat until nothing
changes, with an iteration bound):

- ``"fast_run"`` (the default): inline composite ops; merge; then, to a fixed point, the
  local rules (shape simplification, constant folding, stabilization, canonicalization,
  sums, matrix updates) followed by merge; reduction fusion; elementwise fusion; merge;
  in-place marking.
- ``"fast_compile"``: merge, constant folding and the shape constants only: cheap passes
  that keep the graph recognisable (no fusion, no stabilization).
- ``None``: no rewrites (an empty log).

Other modules add pipelines to ``PIPELINES`` (``bn_folding`` adds ``"fast_run_fold_bn"`` and
``"fold_bn"``).  Running a pipeline a second time changes nothing (the tests check this
idempotence).  A rule that raises is skipped and recorded in ``log.failures``.
"""
from __future__ import annotations

from minigraph.rewriting.blas import BLAS_RULES
from minigraph.rewriting.canonicalize import CANONICALIZE_RULES
from minigraph.rewriting.constant_folding import constant_folding
from minigraph.rewriting.framework import (Fixpoint, GlobalPass, LocalPass, LocalRule, Pass, RewriteEntry,
                                           RewriteLog, local_rule, run_pipeline)
from minigraph.rewriting.fusion import fuse_elemwise, fuse_reductions
from minigraph.rewriting.inline import inline_composites
from minigraph.rewriting.inplace import inplace
from minigraph.rewriting.merge import merge
from minigraph.rewriting.shapes import SHAPE_RULES, local_shape_constant
from minigraph.rewriting.stabilize import STABILIZE_RULES
from minigraph.rewriting.sums import SUM_RULES


def _fast_run() -> list[Pass]:
    local = LocalPass("simplify", SHAPE_RULES + [constant_folding] + STABILIZE_RULES + CANONICALIZE_RULES + SUM_RULES
                      + BLAS_RULES)
    return [
        GlobalPass("inline", inline_composites),
        GlobalPass("merge", merge),
        Fixpoint("simplify_and_merge", [local, GlobalPass("merge", merge)], max_iter=10),
        GlobalPass("reduction_fusion", fuse_reductions),
        # a second round can join regions the first one left apart (a fused node feeding another)
        Fixpoint("elemwise_fusion", [GlobalPass("elemwise_fusion", fuse_elemwise)], max_iter=4),
        GlobalPass("merge", merge),
        GlobalPass("inplace", inplace),
    ]


def _fast_compile() -> list[Pass]:
    return [
        GlobalPass("merge", merge),
        Fixpoint("fold", [LocalPass("fold", [constant_folding, local_shape_constant]), GlobalPass("merge", merge)],
                 max_iter=5),
    ]


#: the named pipelines: name -> function making the list of passes
PIPELINES = {"fast_run": _fast_run, "fast_compile": _fast_compile}


def rewrite_graph(fgraph, rewrites="fast_run") -> RewriteLog:
    """Rewrite ``fgraph`` in place with the pipeline ``rewrites`` ("fast_run", "fast_compile"
    or None) and return the log of the rewrites that fired."""
    if rewrites is None:
        n = len(fgraph)
        return RewriteLog(pipeline=None, nodes_before=n, nodes_after=n)
    if rewrites not in PIPELINES:
        raise ValueError(f"rewrites must be one of {sorted(PIPELINES)} or None, got {rewrites!r}")
    return run_pipeline(fgraph, rewrites, PIPELINES[rewrites]())


__all__ = ["rewrite_graph", "RewriteLog", "RewriteEntry", "PIPELINES", "LocalRule", "LocalPass", "GlobalPass",
           "Fixpoint", "local_rule", "run_pipeline"]

from minigraph.rewriting import bn_folding  # noqa: E402,F401  (registers the "fast_run_fold_bn" and "fold_bn" pipelines)
