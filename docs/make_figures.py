"""Generate every printed graph, table and picture in docs/tutorial.md, docs/gradient_tour.md,
docs/compilation.md and docs/api.md.

    python docs/make_figures.py            # rewrite the generated blocks and docs/figures/
    python docs/make_figures.py --check    # exit 1 if a generated text block is out of date

A generated block sits between ``<!-- make_figures: NAME -->`` and ``<!-- /make_figures -->``
in the Markdown; everything outside the markers is prose.  Pictures (SVG, with their DOT
source beside them) go to docs/figures/ and need Graphviz's ``dot``; without it only the
.dot files are written.  Timings (the profile) depend on the machine and change at each run;
``--check`` ignores blocks whose name starts with ``measured_``.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
import sys
import textwrap

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import minigraph as mg  # noqa: E402
import minigraph.tensor as T  # noqa: E402
from minigraph.printing import (compare, debugprint, dot_program, explain, kernels_of, listing,  # noqa: E402
                                render, to_dot, to_networkx)
from minigraph.printing.views import rewrite_report  # noqa: E402
from minigraph.printing.examples import bn_example  # noqa: E402
from minigraph.printing.text import canonical_namer, expand_composites  # noqa: E402

FIGURES_DIR = os.path.join(HERE, "figures")
DOCS = ["tutorial.md", "gradient_tour.md", "compilation.md", "api.md"]
BLOCKS: dict = {}
PICTURES: list = []


def block(name: str, lang: str = "text"):
    """Register a function returning the text of block ``name`` (fenced as ``lang``)."""
    def wrap(fn):
        BLOCKS[name] = (fn, lang)
        return fn
    return wrap


def picture(name: str):
    """Register a function returning (graph object, title, to_dot options) for figures/NAME.svg."""
    def wrap(fn):
        PICTURES.append((name, fn))
        return fn
    return wrap


def compiled_mode() -> str:
    """numba when its backend is importable (the default mode), else python."""
    try:
        from minigraph.backends.numba import NumbaLinker  # noqa: F401
    except ImportError:
        return "python"
    return "numba"


def captured(fn) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn()
    return buf.getvalue()


# --- tutorial ------------------------------------------------------------------------------------

def tutorial_model():
    import numpy as np

    import minigraph as mg
    import minigraph.tensor as T
    from minigraph.datasets import load_digits
    from minigraph.tensor.nnet import bn

    data = load_digits()                      # 8x8 images: 64 features, 10 classes
    rng = np.random.default_rng(0)

    # 1. symbolic inputs: a batch of images and their labels (no values yet)
    x = T.matrix("x")
    y = T.ivector("y")

    # 2. parameters and running statistics live in shared variables
    def weights(n_in, n_out, name):
        w = rng.standard_normal((n_in, n_out)) * np.sqrt(1.0 / n_in)
        return mg.shared(w.astype("float32"), name=name)

    W1, W2 = weights(64, 100, "W1"), weights(100, 10, "W2")
    b2 = mg.shared(np.zeros(10, "float32"), name="b2")
    gamma = mg.shared(np.ones(100, "float32"), name="gamma")
    beta = mg.shared(np.zeros(100, "float32"), name="beta")
    running_mean = mg.shared(np.zeros(100, "float32"), name="running_mean")
    running_var = mg.shared(np.ones(100, "float32"), name="running_var")

    # 3. the model: dense (no bias: batch norm's beta replaces it) -> batch norm -> tanh -> dense -> softmax
    a1 = T.dot(x, W1)
    h_train, _, _, new_mean, new_var = bn.batch_normalization_train(
        a1, gamma, beta, epsilon=1e-5, running_mean=running_mean, running_var=running_var)
    h_test = bn.batch_normalization_test(a1, gamma, beta, running_mean, running_var, epsilon=1e-5)
    p_train = T.nnet.softmax(T.dot(T.tanh(h_train), W2) + b2)
    p_test = T.nnet.softmax(T.dot(T.tanh(h_test), W2) + b2)
    cost = -T.mean(T.log(p_train)[T.arange(y.shape[0]), y])      # negative log likelihood

    # 4. the gradient is a graph too; SGD updates are (shared variable, new value) pairs
    params = [W1, gamma, beta, W2, b2]
    grads = mg.grad(cost, params)
    updates = [(q, q - 0.1 * g) for q, g in zip(params, grads)]
    updates += [(running_mean, new_mean), (running_var, new_var)]

    # 5. compile: the rewrites simplify and fuse the graph, the backend compiles it
    train = mg.function([x, y], cost, updates=updates)
    predict = mg.function([x], T.argmax(p_test, axis=1))

    # 6. train: each call runs one step and applies the updates
    for epoch in range(5):
        order = rng.permutation(len(data.x_train))
        for start in range(0, len(order) - 99, 100):
            batch = order[start:start + 100]
            loss = train(data.x_train[batch], data.y_train[batch])
        accuracy = np.mean(predict(data.x_test) == data.y_test)
        print(f"epoch {epoch}: last batch loss {float(loss):.3f}, test accuracy {accuracy:.3f}")
    return dict(x=x, y=y, cost=cost, grads=grads, params=params, train=train, predict=predict, p_test=p_test)


_TUTORIAL: dict = {}


def tutorial_state() -> dict:
    if not _TUTORIAL:
        out = captured(lambda: _TUTORIAL.update(tutorial_model()))
        _TUTORIAL["output"] = out
    return _TUTORIAL


@block("tutorial_code", "python")
def _tutorial_code():
    src = inspect.getsource(tutorial_model)
    body = textwrap.dedent("\n".join(src.splitlines()[1:]))
    body = body.split("    return dict(")[0] if "    return dict(" in body else body
    return "\n".join(line for line in body.splitlines() if not line.startswith("return dict(")).rstrip()


@block("tutorial_output")
def _tutorial_output():
    return tutorial_state()["output"]


@block("tutorial_cost_listing")
def _tutorial_cost_listing():
    return listing(tutorial_state()["cost"], mark="statistics")


@block("tutorial_cost_pp")
def _tutorial_cost_pp():
    s = tutorial_state()
    return mg.pp(s["cost"])


@block("tutorial_compare")
def _tutorial_compare():
    s = tutorial_state()
    return compare(s["grads"], s["train"], diff=False, titles=("raw gradients", "train step"))


@block("tutorial_explain")
def _tutorial_explain():
    s = tutorial_state()
    return explain(s["train"], (100, 64), (100,)).text(nodes=False)


# --- gradient tour ------------------------------------------------------------------------------------

TOUR_SHAPE = (4, 3)


def tour_example():
    return bn_example(TOUR_SHAPE)


@block("tour_forward")
def _tour_forward():
    return listing(tour_example().forward)


@block("tour_forward_expanded")
def _tour_forward_expanded():
    return listing(expand_composites(tour_example().forward), mark="statistics")


@block("tour_gradient")
def _tour_gradient():
    return listing(tour_example().grads, mark="statistics")


def paper_quantities(x, gamma, dy, eps):
    """The paper's backward-pass quantities for one mini-batch (Ioffe & Szegedy 2015, sec. 3)."""
    m = x.shape[0]
    mu = x.mean(0)
    var = ((x - mu) ** 2).mean(0)
    xhat = (x - mu) / np.sqrt(var + eps)
    dxhat = dy * gamma
    dvar = (dxhat * (x - mu)).sum(0) * -0.5 * (var + eps) ** -1.5
    dmu = (dxhat * -1 / np.sqrt(var + eps)).sum(0) + dvar * (-2 * (x - mu)).sum(0) / m
    dx = dxhat / np.sqrt(var + eps) + dvar * 2 * (x - mu) / m + dmu / m
    return [
        ("mu_B = 1/m sum x_i", mu),
        ("sigma2_B = 1/m sum (x_i - mu_B)^2", var),
        ("1 / sqrt(sigma2_B + eps)", 1 / np.sqrt(var + eps)),
        ("x_i - mu_B", x - mu),
        ("dL/dxhat_i = dL/dy_i * gamma", dxhat),
        ("dL/dgamma = sum dL/dy_i * xhat_i", (dy * xhat).sum(0)),
        ("dL/dbeta = sum dL/dy_i", dy.sum(0)),
        ("dL/dsigma2_B", dvar),
        ("dL/dmu_B", dmu),
        ("dL/dx_i", dx),
    ]


def tour_mapping(ex):
    """Evaluate every node of the raw gradient graph and find the nodes whose values equal
    the paper's quantities: (quantity, [node names], op)."""
    rng = np.random.default_rng(0)
    # a small spread, so that var and var + eps differ by more than the tolerance
    xv = rng.standard_normal(TOUR_SHAPE) * 0.02 + 0.5
    dyv = rng.standard_normal(TOUR_SHAPE)
    gv = rng.uniform(0.5, 1.5, TOUR_SHAPE[1])
    ex.gamma.set_value(gv.astype("float32"))
    ex.beta.set_value(rng.standard_normal(TOUR_SHAPE[1]).astype("float32"))
    namer = canonical_namer(ex.grads)
    values = {}
    from minigraph.graph.basic import Constant, graph_inputs, toposort

    for v in graph_inputs(ex.grads):
        if isinstance(v, Constant):
            values[id(v)] = v.data
        elif v is ex.x:
            values[id(v)] = xv.astype("float32")
        elif v is ex.dy:
            values[id(v)] = dyv.astype("float32")
        else:
            values[id(v)] = v.get_value()
    order = toposort(ex.grads)
    for node in order:
        outs = node.op.perform(node, [values[id(i)] for i in node.inputs])
        for o, val in zip(node.outputs, outs):
            values[id(o)] = val
    rows = []
    for label, ref in paper_quantities(xv, gv, dyv, 1e-5):
        hits = []
        for node in order:
            for o in node.outputs:
                val = np.asarray(values[id(o)], dtype="float64")
                if val.size == ref.size and val.size > 1 and np.allclose(val.reshape(ref.shape), ref, rtol=1e-3,
                                                                          atol=1e-9):
                    hits.append((namer(o), str(node.op)))
        rows.append((label, hits))
    return rows


@block("tour_mapping", "markdown")
def _tour_mapping():
    rows = tour_mapping(tour_example())
    lines = ["| the paper's quantity | node(s) of the raw gradient graph | op |", "|---|---|---|"]
    for label, hits in rows:
        names = ", ".join(f"`{n}`" for n, _ in hits[:3]) or "(not materialized as one node)"
        ops = ", ".join(sorted({op for _, op in hits[:3]})) or ""
        lines.append(f"| `{label}` | {names} | {ops} |")
    return "\n".join(lines)


def tour_networkx_code():
    ex = bn_example((4, 3))
    g = mg.printing.to_networkx(ex.grads)            # keys are the listing's names
    stats = [k for k, d in g.nodes(data=True) if d["statistic"]]
    print("statistics:", stats)
    for s in stats:                                  # who reads each statistic
        print(f"  {s} is read by", sorted(g.successors(s), key=lambda k: g.nodes[k]["order"]))
    import networkx as nx
    path = nx.shortest_path(g, "var", "dx")          # how the variance reaches dx
    print("var -> dx:", " -> ".join(f"{k} ({g.nodes[k]['op']})" for k in path))
    reductions = [k for k, d in g.nodes(data=True) if d["op"] and d["op"].startswith("sum")]
    print("reductions:", len(reductions), "of", g.number_of_nodes(), "nodes")


@block("tour_networkx_code", "python")
def _tour_networkx_code():
    src = inspect.getsource(tour_networkx_code)
    return textwrap.dedent("\n".join(src.splitlines()[1:])).rstrip()


@block("tour_networkx_output")
def _tour_networkx_output():
    return captured(tour_networkx_code)


@picture("bn_forward")
def _pic_forward():
    return tour_example().forward, "batch norm, forward: one node", {}


@picture("bn_forward_expanded")
def _pic_forward_expanded():
    return expand_composites(tour_example().forward), "inside the node: the statistics (red) are graph nodes", {}


@picture("bn_gradient")
def _pic_gradient():
    return tour_example().grads, "raw gradient graph of batch norm (dx, dgamma, dbeta)", {}


# --- compilation walkthrough -------------------------------------------------------------------------------

COMPILE_SHAPE = (100, 784)
_COMPILED: dict = {}


def compiled_step(rewrites="fast_run"):
    key = rewrites
    if key not in _COMPILED:
        ex = bn_example(COMPILE_SHAPE)
        _COMPILED[key] = (ex, ex.compile(mode=compiled_mode() if rewrites else "python", rewrites=rewrites))
    return _COMPILED[key]


@block("compile_counts")
def _compile_counts():
    ex, raw = compiled_step(None)
    _, f = compiled_step()
    return compare(raw, f, diff=False, titles=("no rewrites", "fast_run"))


@block("compile_rewrite_log")
def _compile_rewrite_log():
    _, f = compiled_step()
    # the rewriting time changes from run to run (and a restored graph says so); the rest is deterministic
    return re.sub(r" in [0-9.]+ ms( \(restored from the compile cache\))?", "", rewrite_report(f, limit=12))


@block("compile_listing")
def _compile_listing():
    _, f = compiled_step()
    return listing(f)


@block("compile_explain")
def _compile_explain():
    _, f = compiled_step()
    return explain(f).text()


@block("compile_reduction_chain")
def _compile_reduction_chain():
    """The longest chain of reductions that depend on each other in the compiled step."""
    import networkx as nx

    _, f = compiled_step()
    g = to_networkx(f)
    is_red = {k: bool(d["op"]) and (d["op"].startswith(("sum", "fused_reduce"))) for k, d in g.nodes(data=True)}
    depth: dict = {}
    best: dict = {}
    for k in nx.topological_sort(g):
        preds = list(g.predecessors(k))
        prev = max(preds, key=lambda p: depth[p], default=None)
        depth[k] = (depth[prev] if prev is not None else 0) + (1 if is_red[k] else 0)
        best[k] = (best[prev] if prev is not None else []) + ([k] if is_red[k] else [])
    end = max(depth, key=lambda k: depth[k])
    chain = best[end]
    lines = [f"{len(chain)} reductions in sequence (each needs the one before it complete):"]
    for k in chain:
        lines.append(f"  {k} = {g.nodes[k]['op'][:110]}")
    lines.append(f"so at least {len(chain) + 1} passes over the batch: {len(chain)} to reduce, "
                 f"1 to write the results")
    return "\n".join(lines)


@block("compile_summary")
def _compile_summary():
    """Passes over (N, D) arrays in the compiled step, against the 8-pass floor."""
    ex, f = compiled_step()
    e = explain(f)
    big = int(np.prod(COMPILE_SHAPE)) * 4
    work = [r for r in e.compute_rows()]
    reads = [(r.label, n) for r in work for n, b in r.reads.items() if b == big]
    writes = [(r.label, n) for r in work for n, b in r.writes.items() if b == big]
    results = {n for _, n in writes} & {canonical_namer(f.fgraph.outputs, f.fgraph.inputs)(v)
                                         for v in f.fgraph.outputs[:2]}
    again = sorted({n for _, n in writes} - results)
    lines = [f"kernels that do work:          {len(work)} "
             f"({sum(1 for r in work if any(b == big for b in r.reads.values()))} of them stream (N, D) arrays)",
             f"(N, D) arrays read:             {len(reads)}  " + ", ".join(f"{n} in {k}" for k, n in reads),
             f"(N, D) arrays written:          {len(writes)}  " + ", ".join(f"{n} in {k}" for k, n in writes),
             f"passes over (N, D) data:        {len(reads) + len(writes)}  (the floor is 8: read x for the "
             f"statistics; read x, write y; read x and dy for the backward sums; read x and dy, write dx)",
             f"bytes moved:                    {e.bytes_read + e.bytes_written:,} "
             f"(floor {8 * big:,} = 8 x {big:,})"]
    if again:
        lines.append(f"intermediates written and read back: {', '.join(again)}")
    return "\n".join(lines)


@block("compile_kernel_source", "python")
def _compile_kernel_source():
    _, f = compiled_step()
    ks = [k for k in kernels_of(f) if k.source and "fused_reduce" in k.name]
    if not ks:
        return "# (no generated kernel: the numba backend is not available)"
    k = max(ks, key=lambda k: len(k.nodes[0].inputs))
    return f"# {k.label}: {k.name[:100]}\n" + k.source.rstrip()


@block("compile_compiled_driver", "python")
def _compile_compiled_driver():
    _, f = compiled_step()
    src = f.source()
    start = src.find("# compiled driver")
    if start < 0:
        return "# (no compiled driver: the numba backend is not available)"
    return src[start:src.index("\n# ", start + 1)].rstrip()


@block("measured_profile")
def _measured_profile():
    ex = bn_example(COMPILE_SHAPE)
    f = ex.compile(mode=compiled_mode(), profile=True)
    xs = ex.sample_inputs()
    for _ in range(5):  # warm-up: compilation and first-touch of buffers
        f(*xs)
    f.profile.reset()
    for _ in range(50):
        f(*xs)
    import platform

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"# {f.mode} mode, {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} "
            f"while measuring; 50 calls after 5 warm-up calls\n" + f.profile.summary(limit=10))


@picture("train_step")
def _pic_train_step():
    ex = bn_example((8, 5))
    f = ex.compile(mode=compiled_mode())
    return f, f"compiled training step ({f.mode} mode)", {}


# --- API reference --------------------------------------------------------------------------------------

API_SECTIONS = [
    ("minigraph", "mg", ["config", "shared", "function", "Function", "grad", "verify_grad", "debugprint", "pp",
                         "RandomStreams", "save", "load", "MissingInputError"]),
    ("minigraph.tensor", "T", None),
    ("minigraph.tensor.nnet", "T.nnet", None),
    ("minigraph.tensor.nnet.bn", "T.nnet.bn", None),
    ("minigraph.printing", "mg.printing", None),
    ("minigraph.nn", "minigraph.nn", None),
    ("minigraph.datasets", "minigraph.datasets", None),
]


def _public_names(module, names):
    if names is not None:
        return [n for n in names if hasattr(module, n)]
    if hasattr(module, "__all__"):
        return list(module.__all__)
    out = []
    for n, v in vars(module).items():
        if n.startswith("_") or inspect.ismodule(v):
            continue
        if (getattr(v, "__module__", None) or "").startswith("minigraph"):
            out.append(n)
    return out


def _signature(obj) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    # annotations are strings under `from __future__ import annotations`: show them unquoted
    return re.sub(r"(: |-> )'([^']*)'", r"\1\2", sig)


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return first


@block("api_reference", "markdown")
def _api_reference():
    import importlib

    parts = []
    for modname, alias, names in API_SECTIONS:
        module = importlib.import_module(modname)
        parts.append(f"## `{modname}` ({alias})\n")
        summary = _summary(module)
        if summary:
            parts.append(summary + "\n")
        rows = []
        for n in sorted(_public_names(module, names), key=str.lower):
            obj = getattr(module, n)
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj) or callable(obj):
                sig = _signature(obj) if not isinstance(obj, (dict, list, tuple)) else ""
                text = _summary(obj) if not isinstance(obj, (dict, list, tuple, str)) else ""
            else:
                sig, text = "", f"a {type(obj).__name__}"
            sig = re.sub(r"\s+", " ", sig)
            if len(sig) > 110:
                sig = sig[:107] + "...)"
            rows.append(f"- **`{n}{sig}`**" + (f" — {text}" if text else ""))
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts).rstrip()


@block("api_function_methods", "markdown")
def _api_function_methods():
    from minigraph.compile.function import Function
    from minigraph.compile.profile import Profile

    rows = ["Attributes and methods of a compiled function `f = mg.function(...)`:", "",
            "- **`f(*inputs, **named_inputs)`** — run on input values (by position, or by the inputs' names); "
            "returns the outputs (one value when `outputs` was one variable) and then applies the updates.",
            f"- **`f.source()`** — {_summary(Function.source)}"]
    rows.append("- **`f.rewrite_log`** — the `RewriteLog` of the rewrites that fired (`.summary()`, iterate "
                "for each firing); `mg.printing.rewrite_report(f)` prints both.")
    rows.append("- **`f.profile`** — with `profile=True`, a `Profile`:")
    for n in ("summary", "rows", "record", "record_call", "reset"):
        sig = _signature(getattr(Profile, n)).replace("(self, ", "(").replace("(self)", "()")
        rows.append(f"  - **`{n}{sig}`** — {_summary(getattr(Profile, n))}")
    rows.append("- **`f.fgraph`** — the rewritten `FunctionGraph` that runs (`mg.debugprint(f)`, "
                "`mg.printing.listing(f)`).")
    return "\n".join(rows)


@block("api_printing_extras", "markdown")
def _api_printing_extras():
    from minigraph.printing import views as C

    rows = []
    for n in ("compare", "side_by_side", "rewrite_report", "op_counts", "node_count"):
        obj = getattr(C, n)
        rows.append(f"- **`mg.printing.{n}{_signature(obj)}`** — {_summary(obj)}")
    from minigraph.printing import examples as E
    rows.append(f"- **`mg.printing.examples.bn_example{_signature(E.bn_example)}`** — {_summary(E.bn_example)}")
    return "\n".join(rows)


# --- driver ------------------------------------------------------------------------------------------------

MARK = re.compile(r"(<!-- make_figures: ([a-z_0-9]+) -->\n)(.*?)(<!-- /make_figures -->)", re.S)


def fill(text: str, cache: dict, check: bool, doc: str, stale: list) -> str:
    def repl(m):
        name = m.group(2)
        if name not in BLOCKS:
            raise SystemExit(f"{doc}: unknown block {name!r}")
        if name not in cache:
            fn, lang = BLOCKS[name]
            body = fn().rstrip("\n")
            cache[name] = body if lang == "markdown" else f"```{lang}\n{body}\n```"
        new = m.group(1) + cache[name] + "\n" + m.group(4)
        if check and new != m.group(0) and not name.startswith("measured_"):
            stale.append(f"{doc}: {name}")
        return new

    return MARK.sub(repl, text)


def draw_pictures() -> list[str]:
    os.makedirs(FIGURES_DIR, exist_ok=True)
    written = []
    have_dot = dot_program() is not None
    for name, fn in PICTURES:
        obj, title, options = fn()
        text = to_dot(obj, title=title, **options)
        path = os.path.join(FIGURES_DIR, name + ".dot")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        written.append(path)
        if have_dot:
            written.append(render(text, os.path.join(FIGURES_DIR, name + ".svg")))
    if not have_dot:
        print("Graphviz's dot is not installed: wrote the .dot files only", file=sys.stderr)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report out-of-date blocks, write nothing")
    parser.add_argument("--only", nargs="*", help="only these docs (file names)")
    args = parser.parse_args(argv)
    cache: dict = {}
    stale: list = []
    for doc in args.only or DOCS:
        path = os.path.join(HERE, doc)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        new = fill(text, cache, args.check, doc, stale)
        if not args.check and new != text:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(new)
            print(f"updated {path}")
    if args.check:
        for s in stale:
            print(f"out of date: {s}")
        return 1 if stale else 0
    for path in draw_pictures():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
