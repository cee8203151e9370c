"""Looking at graphs: as text (``listing``, ``debugprint``, ``pp``), as a networkx graph
(``to_networkx``), as a picture (``to_dot``, ``render``), side by side (``compare``,
``rewrite_report``), and as the kernels that run (``explain``)."""
from minigraph.printing.text import Namer, debugprint, escape, listing, pp

__all__ = ["Namer", "debugprint", "escape", "listing", "pp"]
