"""Backends turn a rewritten FunctionGraph into a thunk: ``thunk(input_values) -> outputs``."""
