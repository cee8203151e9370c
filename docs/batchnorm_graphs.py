"""Print the graphs shown in docs/batchnorm.md (run: ``python docs/batchnorm_graphs.py``).

Every block of docs/batchnorm.md that shows a graph is pasted from this script's output:
the user's forward graph (one batch-norm node), its inner graph, the raw gradient graph the
autodiff derives (with the statistics and the paper's dL/dvar and dL/dmu terms named), the
closed-form gradient graph, the compiled graph, and the numbers that compare the two.
"""
import numpy as np

import minigraph as mg
import minigraph.tensor as T
from minigraph.graph.basic import Constant, ancestors
from minigraph.printing import listing
from minigraph.tensor.nnet import bn


def structure(v, memo):
    """A hashable description of how ``v`` is computed (roots by identity), so that a term
    computed on its own can be found inside a bigger graph."""
    key = memo.get(id(v))
    if key is None:
        if v.owner is None:
            key = ("const", v.signature()) if isinstance(v, Constant) else ("root", id(v))
        else:
            key = (v.owner.op, v.index, tuple(structure(i, memo) for i in v.owner.inputs))
        memo[id(v)] = key
    return key


def name_terms(graph_outputs, terms):
    """Give the variables of ``graph_outputs`` that compute the same as ``terms[name]`` that name."""
    memo = {}
    index = {}
    for v in ancestors(graph_outputs):
        index.setdefault(structure(v, memo), v)
    found = []
    for name, term in terms.items():
        v = index.get(structure(term, memo))
        if v is not None and v.owner is not None:
            v.name = name
            found.append(name)
    return found


def section(title, text):
    print(f"===== {title} =====")
    print(text.rstrip())
    print()


def main():
    x, gamma, beta, dy = T.matrix("x"), T.vector("gamma"), T.vector("beta"), T.matrix("dy")

    # 1. the forward graph: one node, statistics as outputs
    out, mean, invstd = bn.batch_normalization_train(x, gamma, beta)
    section("forward graph (debugprint)", mg.debugprint([out, mean, invstd], file="str"))
    op = out.owner.op
    section("inner graph (listing)", listing(op.inner_outputs, mark="statistics"))

    # 2. the raw gradient graph derived by the autodiff: cost = sum(out * dy)
    cost = T.sum(out * dy)
    dx = mg.grad(cost, x)
    # the paper's terms, each computed on its own from a copy of the inner graph, then found
    # (by structure) inside the gradient graph: they are ordinary nodes of it
    g_out = mg.grad(cost, out)
    copy = op.inline([x, gamma, beta])
    inner = {v.name: v for v in ancestors(copy) if v.name in ("mean", "var", "invstd", "x_centered")}
    terms = {"dL_dout": g_out}
    for name in ("x_centered", "invstd", "var", "mean"):
        terms[f"dL_d{name}"] = mg.grad(None, inner[name], known_grads={copy[0]: g_out})
    found = name_terms([dx], terms)
    section("raw gradient graph dL/dx, autodiff (listing)", listing([dx], mark="statistics"))
    section("terms found in it", ", ".join(found))

    # 3. the closed form: the paper's formula as explicit nodes, reading the node's statistics
    out_c, _, _ = bn.batch_normalization_train(x, gamma, beta, impl="closed_form")
    dx_c = mg.grad(T.sum(out_c * dy), x)
    section("gradient graph dL/dx, closed form (listing)", listing([dx_c], mark="statistics"))

    # 4. what runs: the compiled training graph (python mode, so no kernel grouping is shown)
    outs = [out] + mg.grad(cost, [x, gamma, beta])
    f = mg.function([x, gamma, beta, dy], outs, mode="python")
    section("compiled graph: out, dx, dgamma, dbeta (listing of mg.function, python mode)",
            listing(f, mark="statistics"))

    # 5. the numbers: both variants against each other (float64, python reference interpreter)
    xd, gd, bd, dyd = T.dmatrix("x"), T.dvector("gamma"), T.dvector("beta"), T.dmatrix("dy")
    grads = []
    for impl in ("autodiff", "closed_form"):
        o, _, _ = bn.batch_normalization_train(xd, gd, bd, impl=impl)
        grads += mg.grad(T.sum(o * dyd), [xd, gd, bd])
    f = mg.function([xd, gd, bd, dyd], grads, mode="python")
    rng = np.random.default_rng(0)
    vals = f(rng.standard_normal((100, 784)) * 3 + 1, rng.uniform(0.5, 1.5, 784), rng.standard_normal(784),
             rng.standard_normal((100, 784)))
    diffs = [float(np.max(np.abs(a - c))) for a, c in zip(vals[:3], vals[3:])]
    n_auto = len(mg.graph.toposort([dx]))
    n_closed = len(mg.graph.toposort([dx_c]))
    section("comparison", f"nodes in the raw graph of dL/dx: autodiff {n_auto}, closed form {n_closed}\n"
                          f"largest |autodiff - closed form| on (100, 784) float64: dx {diffs[0]:.1e}, "
                          f"dgamma {diffs[1]:.1e}, dbeta {diffs[2]:.1e}")


if __name__ == "__main__":
    main()
