"""The graph data structure: variables, apply nodes, ops, types and walks."""
from minigraph.graph.basic import (Apply, Constant, Op, Variable, ancestors, as_list, clone_replace,
                                   graph_inputs, io_toposort, toposort, user_frame)
from minigraph.graph.type import TensorType

__all__ = ["Apply", "Constant", "Op", "Variable", "TensorType", "ancestors", "as_list", "clone_replace",
           "graph_inputs", "io_toposort", "toposort", "user_frame"]
