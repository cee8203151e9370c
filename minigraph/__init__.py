"""minigraph: a Theano-style symbolic graph compiler in miniature.

Build a graph with ``minigraph.tensor``, differentiate it with ``grad``, compile it with
``function``: rewrites simplify and fuse the graph and a backend (the Numba code
generator, or the numpy reference interpreter) runs it.
"""
from minigraph.config import config
from minigraph.compile import Function, MissingInputError, function, shared
from minigraph.gradient import grad, verify_grad
from minigraph.printing import debugprint, pp
from minigraph.random import RandomStreams
from minigraph.checkpoint import load, save
from minigraph import tensor  # noqa: F401

__version__ = "0.1.0"

__all__ = ["config", "Function", "MissingInputError", "function", "shared", "grad", "verify_grad", "debugprint",
           "pp", "RandomStreams", "tensor", "save", "load", "__version__"]
