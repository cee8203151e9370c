"""Printing graphs: golden text of listing, debugprint and pp for canonical graphs (a dense
layer, its gradient, batch norm forward and its raw gradient), escaping of user names, the
networkx export (counts, attributes, acyclic, topological order) and DOT output.

Golden files live in tests/golden/printing/; after an intended change of a printed graph,
regenerate them with ``MINIGRAPH_UPDATE_GOLDEN=1 python -m pytest tests/test_printing.py``
and review the diff.
"""
import difflib
import os
import subprocess

import networkx as nx
import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.graph.basic import ancestors, graph_inputs, toposort
from minigraph.printing import (GraphvizNotFound, Namer, debugprint, dot_program, escape, listing, pp, render, to_dot,
                                to_networkx)
from minigraph.printing.examples import bn_example
from minigraph.printing.graphs import is_statistic, parse_dot
from minigraph.printing.text import expand_composites
from minigraph.tensor.shape_ops import shape_i

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "printing")


def check_golden(name: str, actual: str) -> None:
    path = os.path.join(GOLDEN, name)
    if os.environ.get("MINIGRAPH_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(actual.rstrip("\n") + "\n")
    with open(path, encoding="utf-8") as fh:
        expected = fh.read().rstrip("\n")
    actual = actual.rstrip("\n")
    if actual != expected:
        diff = "\n".join(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "golden", "actual",
                                              lineterm=""))
        pytest.fail(f"{name} differs from the golden text:\n{diff}")


# --- canonical graphs ------------------------------------------------------------------------

def dense_layer():
    x = T.matrix("x")
    W = mg.shared(np.zeros((3, 2), "float32"), name="W")
    b = mg.shared(np.zeros(2, "float32"), name="b")
    return x, W, b, T.tanh(T.dot(x, W) + b)


def test_dense_layer_golden():
    x, W, b, h = dense_layer()
    check_golden("dense_listing.txt", listing(h))
    check_golden("dense_debugprint.txt", debugprint(h, print_type=True, file="str"))
    assert pp(h) == "tanh(dot(x, W) + b)"


def test_dense_gradient_golden():
    x, W, b, h = dense_layer()
    gW, gb = mg.grad(h.sum(), [W, b])
    check_golden("dense_grad_listing.txt", listing([gW, gb]))


def test_bn_forward_golden():
    ex = bn_example((4, 3))
    check_golden("bn_forward_listing.txt", listing(ex.forward))
    check_golden("bn_forward_debugprint.txt", debugprint(ex.forward, file="str", inner_graphs=False))
    expanded = expand_composites(ex.forward)
    check_golden("bn_forward_expanded_listing.txt", listing(expanded, mark="statistics"))
    assert pp(expanded[0]) == "x_centered * gamma * invstd + beta"
    assert pp(expanded[0], names=False) == (
        "(x - mean(x, axis=0)) * gamma * (1.0 / sqrt(mean(sqr(x - mean(x, axis=0)), axis=0) + 1e-05)) + beta")


def test_bn_gradient_golden():
    ex = bn_example((4, 3))
    check_golden("bn_grad_listing.txt", listing(ex.grads, mark="statistics"))
    check_golden("bn_dgamma_debugprint.txt", debugprint(ex.grads[1], print_type=True, file="str"))


# --- debugprint ------------------------------------------------------------------------------

def test_debugprint_shared_subexpression_printed_once():
    x = T.vector("x")
    s = T.exp(x)
    out = s * s + s
    text = debugprint(out, file="str")
    assert text.count("exp [id") == 3        # defined once, referred to twice
    assert text.count("exp [id C]") == 3 and text.count("exp [id C] ...") == 2
    assert text.count("input 'x'") == 1


def test_debugprint_depth_and_file(capsys):
    x = T.vector("x")
    out = T.tanh(T.exp(T.log(x)))
    shallow = debugprint(out, depth=2)
    printed = capsys.readouterr().out
    assert printed == shallow
    assert len(shallow.splitlines()) == 2 and "log" not in shallow
    assert len(debugprint(out, file="str").splitlines()) == 4
    assert capsys.readouterr().out == ""


def test_debugprint_compiled_function_labels_outputs_and_updates():
    x = T.vector("x")
    W = mg.shared(np.ones(3, "float32"), name="W")
    cost = T.sum(x * W)
    f = mg.function([x], cost, updates=[(W, W - 0.1 * mg.grad(cost, W))], mode="python")
    text = debugprint(f, file="str")
    assert "<- output 0" in text and "<- update of W" in text
    lines = listing(f).splitlines()
    assert lines[-2].startswith("return ") and lines[-1].startswith("update W <- ")


def test_debugprint_rejects_non_variables():
    with pytest.raises(TypeError, match="expected a variable"):
        debugprint([1, 2], file="str")


# --- listing and names ------------------------------------------------------------------------

def test_listing_names_in_order_and_types():
    x = T.tensor("float32", (100, 784), name="x")
    W = mg.shared(np.zeros((784, 10), "float32"), name="W")
    out = T.dot(x, W) * 2
    lines = listing(out).splitlines()
    assert lines[0] == "x = input :: float32[100, 784]"
    assert lines[1] == "W = shared :: float32[784, 10]"
    assert lines[2] == "a = dot(x, W) :: float32[100, 10]"
    assert lines[3] == "b = mul(a, 2.0) :: float32[100, 10]"
    assert lines[4] == "return b"


def test_fresh_names_avoid_user_names():
    x = T.vector("a")          # a user variable called "a"
    out = T.exp(x) + 1
    lines = listing(out).splitlines()
    assert lines[0] == "a = input :: float32[?]"
    assert lines[1].startswith("b = exp(a)")  # the short name "a" is taken by the user's variable


def test_deep_graph_prints_without_recursion():
    x = T.vector("x")
    y = x
    for _ in range(1500):  # deeper than Python's default recursion limit
        y = T.tanh(y)
    assert listing(y).count("tanh(") == 1500
    assert len(debugprint(y, file="str").splitlines()) == 1501
    assert pp(y).count("tanh(") == 1500
    assert to_networkx(y).number_of_nodes() == 1501
    assert len(parse_dot(to_dot(y))[1]) == 1500


def test_escape():
    assert escape('a"b') == 'a\\"b'
    assert escape("a'b") == "a\\'b"
    assert escape("a\\b") == "a\\\\b"
    assert escape("a\nb\tc\x00") == "a\\nb\\tc\\x00"
    assert "\n" not in escape("\n\r\x1b")
    assert escape("\u2028") == "\\u2028"                    # a line separator is escaped
    assert escape("\U000e0001") == "\\U000e0001"
    assert escape("\u00e9\U0001f600") == "\u00e9\U0001f600"  # printable characters stay


@pytest.mark.parametrize("name", ['say "hi"', "it's", "back\\slash", "two\nlines", "tab\there", "", "1abc",
                                  "class", "x y"])
def test_odd_names_print_escaped(name):
    x = T.vector(name)
    y = T.exp(x)
    y.name = name + "!"
    text = listing(y)
    for line in text.splitlines():
        assert "\n" not in line
    lines = text.splitlines()
    # every printed name is an identifier, and the original name is shown escaped
    first = lines[0].split(" = ")[0]
    assert first.isidentifier()
    if name and not name.isidentifier() or name == "class":
        assert f"# name: '{escape(name)}'" in lines[0]
    dp = debugprint(y, file="str")
    assert len(dp.splitlines()) == 2
    if name:
        assert f"'{escape(name)}'" in dp
    assert "\n" not in pp(y)


def test_op_names_with_newlines_stay_on_one_line():
    from minigraph.graph.opfromgraph import OpFromGraph

    a = T.vector("a")
    op = OpFromGraph([a], [a * 2], name="two\nlines")
    y = op(T.vector("x"))
    assert len(listing(y).splitlines()) == 3
    assert "two\\nlines" in listing(y)
    assert len(debugprint(y, file="str", inner_graphs=False).splitlines()) == 2
    assert "\n" not in pp(y)
    nodes, edges = parse_dot(to_dot(y))
    assert len(nodes) == 2 and len(edges) == 1


def test_namer_dedupes_and_is_stable():
    a, b = T.vector("w"), T.vector("w")
    namer = Namer()
    assert namer(a) == "w" and namer(b) == "w_2" and namer(a) == "w"
    c = T.vector()
    assert namer(c) == "a"
    weird = T.vector("w-1")
    assert namer(weird) == "w_1" and namer.original(weird) == "w-1"


# --- pp --------------------------------------------------------------------------------------

def test_pp_precedence():
    a, b, c = T.vector("a"), T.vector("b"), T.vector("c")
    assert pp(a - (b - c)) == "a - (b - c)"
    assert pp((a - b) - c) == "a - b - c"
    assert pp(a * (b / c)) == "a * (b / c)"
    assert pp(a / b * c) == "a / b * c"
    assert pp((a + b) * c) == "(a + b) * c"
    assert pp(-(a * b)) == "-(a * b)"
    assert pp((a ** b) ** c) == "(a ** b) ** c"
    assert pp(a ** (b ** c)) == "a ** b ** c"


def test_pp_mean_and_shapes():
    x = T.matrix("x")
    assert pp(x - x.mean(axis=0)) == "x - mean(x, axis=0)"
    assert pp(x.sum(axis=1)) == "sum(x, axis=1)"
    assert pp(x.T) == "x.T"
    assert pp(T.cast(shape_i(x, 0), "float32")) == "float32(x.shape[0])"


# --- networkx ---------------------------------------------------------------------------------

def _check_networkx(outputs):
    g = to_networkx(outputs)
    nodes = toposort(outputs)
    roots = graph_inputs(outputs)
    assert isinstance(g, nx.DiGraph)
    assert g.number_of_nodes() == len(nodes) + len(roots)
    assert sum(1 for _, k in g.nodes(data="kind") if k == "apply") == len(nodes)
    # one edge per distinct (producer, consumer) pair, counted here from the graph itself
    pairs = set()
    for node in nodes:
        for v in node.inputs:
            pairs.add((id(v.owner) if v.owner is not None else id(v), id(node)))
    assert g.number_of_edges() == len(pairs)
    assert nx.is_directed_acyclic_graph(g)
    order = dict(g.nodes(data="order"))
    assert sorted(order.values()) == list(range(g.number_of_nodes()))
    assert all(order[u] < order[v] for u, v in g.edges())      # our order is a topological order
    ours = [k for k, _ in sorted(order.items(), key=lambda kv: kv[1])]
    assert set(nx.topological_sort(g)) == set(ours)
    # positions on edges cover every input of every apply node exactly once
    for key, data in g.nodes(data=True):
        if data["kind"] == "apply":
            positions = sorted(p for _, _, ps in g.in_edges(key, data="positions") for p in ps)
            node = nodes[data["order"] - len(roots)]
            assert positions == list(range(len(node.inputs)))
            assert data["op"] == str(node.op)
    return g


def test_networkx_dense_layer_attributes():
    x, W, b, h = dense_layer()
    g = _check_networkx([h])
    assert g.nodes["x"]["kind"] == "input" and g.nodes["W"]["kind"] == "shared"
    assert g.nodes["W"]["shape"] == (3, 2) and g.nodes["W"]["dtype"] == "float32"
    assert g.nodes["a"]["op"] == "dot" and g.nodes["a"]["shape"] == (None, 2)
    assert g.edges["x", "a"]["positions"] == (0,) and g.edges["W", "a"]["positions"] == (1,)
    assert g.nodes["e"]["op"] == "tanh" and g.nodes["e"]["output_of"] == "output 0"
    ds = [k for k, d in g.nodes(data=True) if d["op"] == "dimshuffle{x,0}"][0]
    assert g.nodes[ds]["params"] == {"new_order": ("x", 0), "input_ndim": 1}


def test_networkx_repeated_input_and_constants():
    x = T.vector("x")
    out = x * x + 2
    g = _check_networkx([out])
    mul = next(k for k, d in g.nodes(data=True) if d["op"] == "mul")
    assert g.edges["x", mul]["positions"] == (0, 1)
    consts = [k for k, d in g.nodes(data=True) if d["kind"] == "constant"]
    assert len(consts) == 1 and g.nodes[consts[0]]["value"] == "2.0"


def test_networkx_bn_gradient_graph():
    ex = bn_example((4, 3))
    g = _check_networkx(ex.grads)
    stats = sorted(d["name"] for _, d in g.nodes(data=True) if d["statistic"])
    assert stats == ["invstd", "mean", "var"]
    # every statistic is an ancestor of dx: the backward pass goes through them
    dx = next(k for k, d in g.nodes(data=True) if d["name"] == "dx")
    for k, d in g.nodes(data=True):
        if d["statistic"]:
            assert k in nx.ancestors(g, dx)
    assert len(nx.ancestors(g, dx)) + 1 == len(ancestors([ex.grads[0]]))


def test_networkx_bn_forward_multi_output():
    ex = bn_example((4, 3))
    g = _check_networkx(ex.forward)
    bn = next(k for k, d in g.nodes(data=True) if d["kind"] == "apply")
    assert g.nodes[bn]["outputs"][:3] == ["y", "mean", "invstd"]
    assert g.nodes[bn]["statistic"] and is_statistic(ex.mean) and is_statistic(ex.invstd)
    assert not is_statistic(ex.y)


# --- DOT ---------------------------------------------------------------------------------------

def test_dot_structure_matches_graph():
    ex = bn_example((4, 3))
    text = to_dot(ex.grads, title="raw gradient")
    nodes, edges = parse_dot(text)
    g = to_networkx(ex.grads)
    assert len(nodes) == g.number_of_nodes() and len(edges) == g.number_of_edges()
    assert text.count('fillcolor="#f8d7da"') == 3        # mean, var, invstd highlighted
    assert text.startswith("digraph minigraph {") and text.rstrip().endswith("}")


@pytest.mark.parametrize("name", ['q"uote', "new\nline", "back\\slash\\", "\\l\\N", "}; digraph x {", "a\"];b->c;//"])
def test_dot_escapes_names(name):
    x = T.vector(name)
    y = T.exp(x)
    y.name = name
    text = to_dot(y, title=name)
    nodes, edges = parse_dot(text)
    assert len(nodes) == 2 and len(edges) == 1
    for line in text.splitlines()[1:-1]:
        assert line.startswith("  ")          # no statement was split by a raw newline
    if dot_program():
        proc = subprocess.run([dot_program(), "-Tsvg"], input=text.encode(), capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.count(b"class=\"node\"") == 2 and proc.stdout.count(b"class=\"edge\"") == 1


@pytest.mark.skipif(dot_program() is None, reason="Graphviz's dot is not installed")
def test_render_svg_and_png(tmp_path):
    ex = bn_example((4, 3))
    svg = render(ex.forward, str(tmp_path / "forward.svg"))
    data = open(svg, "rb").read()
    assert data.startswith(b"<?xml") and b"<svg" in data and b"batch_norm_train" in data
    png = render(ex.grads, str(tmp_path / "grad.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_render_dot_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGRAPH_DOT", str(tmp_path / "no-such-dot"))
    x = T.vector("x")
    path = render(T.exp(x), str(tmp_path / "g.dot"))
    assert parse_dot(open(path).read())[1] == [("n0", "n1")]
    with pytest.raises(GraphvizNotFound, match="apt-get install graphviz"):
        render(T.exp(x), str(tmp_path / "g.svg"))
    assert not (tmp_path / "g.svg").exists()
    with pytest.raises(ValueError, match="unknown picture format"):
        render(T.exp(x), str(tmp_path / "g.bmp"))
