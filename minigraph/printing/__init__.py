"""Looking at graphs: as text (``listing``, ``debugprint``, ``pp``), as a networkx graph
(``to_networkx``), as a picture (``to_dot``, ``render``), side by side (``compare``,
``rewrite_report``), and as the kernels that run (``explain``)."""
from minigraph.printing.explain import Explanation, explain
from minigraph.printing.graphs import GraphvizNotFound, dot_program, is_statistic, render, to_dot, to_networkx
from minigraph.printing.kernels import kernels_of
from minigraph.printing.text import Namer, canonical_namer, debugprint, escape, expand_composites, listing, pp
from minigraph.printing.views import compare, node_count, op_counts, rewrite_report, side_by_side

__all__ = ["Explanation", "explain", "GraphvizNotFound", "dot_program", "is_statistic", "render", "to_dot",
           "to_networkx", "kernels_of", "Namer", "canonical_namer", "debugprint", "escape", "expand_composites", "listing", "pp",
           "compare", "node_count", "op_counts", "rewrite_report", "side_by_side"]
