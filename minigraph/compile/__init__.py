"""Compiling graphs into callables: ``function``, shared variables, modes, profiles."""
from minigraph.compile.function import Function, MissingInputError, function
from minigraph.compile.shared import SharedVariable, TensorSharedVariable, shared

__all__ = ["Function", "MissingInputError", "SharedVariable", "TensorSharedVariable", "function", "shared"]
