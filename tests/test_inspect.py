"""Looking at compiled functions: explain()'s kernel table checked against hand-computed
byte counts for the batch-norm training step, profiles, the raw-vs-rewritten comparison,
the rewrite log report, and the ``minigraph inspect`` / ``minigraph explain`` commands."""
import io
import os

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.compile.profile import Profile
from minigraph.graph.basic import toposort
from minigraph.printing import debugprint, dot_program, explain, kernels_of, listing
from minigraph.printing.commands import main as commands_main
from minigraph.printing.views import compare, node_count, rewrite_report, side_by_side
from minigraph.printing.examples import bn_example
from minigraph.printing.graphs import parse_dot

N, D = 6, 5
F32 = 4
BIG, PARAM = N * D * F32, D * F32     # bytes of x-shaped and gamma-shaped float32 arrays


def _row(expl, op_text):
    """The kernel whose node listing contains ``op_text``."""
    rows = [r for r in expl.rows if any(op_text in n for n in r.nodes)]
    assert rows, f"no kernel computes {op_text!r}"
    return rows[0]


# --- explain: bytes by hand ----------------------------------------------------------------------

def test_explain_bn_raw_step_bytes_by_hand():
    """Python mode, no rewrites: each node is a kernel, so every count follows from the raw
    gradient graph (tests/golden/printing/bn_grad_listing.txt) by hand."""
    ex = bn_example((N, D))
    f = ex.compile(mode="python", rewrites=None)
    e = explain(f)
    # the batch-norm node reads x and its four parameters; it writes all five outputs: y,
    # mean, invstd and the two new running statistics (a node writes its results even when,
    # as here, the gradient recomputes mean and invstd instead of reading them)
    bn = _row(e, "batch_norm_train")
    assert bn.reads == {"x": BIG, "gamma": PARAM, "beta": PARAM, "running_mean": PARAM, "running_var": PARAM}
    assert bn.bytes_read == BIG + 4 * PARAM
    assert bn.writes == {"y": BIG, "mean": PARAM, "invstd": PARAM, "a": PARAM, "b": PARAM}
    # the mean's sum: one pass over x, D results, N*D additions
    s = _row(e, "sum{axis=0}(x)")
    assert (s.bytes_read, s.bytes_written, s.flops, s.passes, s.ops) == (BIG, PARAM, N * D, 1, 1)
    assert bn.ops > 10                                         # the primitives of its inner graph
    assert s.largest_input == "x" and s.largest_input_bytes == BIG
    # x - mean: reads x and the (1, D) mean through its dimshuffle, writes an (N, D) array
    c = _row(e, "x_centered = sub(x, mean")
    assert c.bytes_read == BIG + PARAM and c.bytes_written == BIG and c.flops == N * D
    # views move nothing
    views = [r for r in e.rows if r.kind == "view"]
    assert views and all(r.bytes_read == 0 and r.bytes_written == 0 for r in views)
    # totals are the sums of the rows
    assert e.bytes_read == sum(r.bytes_read for r in e.rows)
    assert e.bytes_written == sum(r.bytes_written for r in e.rows)


def test_explain_bn_train_step_fused(mode):
    """With the rewrites: every kernel that reads x or dy reads all of it (N*D*4 bytes), each of
    the results y and dx is written exactly once (N*D*4 bytes), the statistics and the
    parameter updates are D*4 bytes each, and every reduction makes one pass."""
    from minigraph.printing import canonical_namer

    ex = bn_example((N, D))
    f = ex.compile(mode=mode)
    e = explain(f)
    for r in e.rows:
        for name in ("x", "dy"):
            if name in r.reads:
                assert r.reads[name] == BIG
        assert r.bytes_read == sum(r.reads.values())
        assert r.bytes_written == sum(r.writes.values())
        if r.kind in ("reduce", "fused_reduce"):
            assert r.passes == 1
        if r.kind.startswith("fused"):
            assert r.ops > 1                                  # a fused kernel stands for several ops
        # (N, D) arrays, per-feature vectors or scalars
        assert all(b in (BIG, PARAM) or b <= 8 for b in r.writes.values()), r.writes
    namer = canonical_namer(f.fgraph.outputs, f.fgraph.inputs)
    y, dx = (namer(v) for v in f.fgraph.outputs[:2])
    for name in (y, dx):
        writers = [r for r in e.rows if name in r.writes]
        assert len(writers) == 1 and writers[0].writes[name] == BIG
    updates = [namer(v) for v in f.fgraph.outputs[2:]]
    assert all(sum(r.writes.get(u, 0) for r in e.rows) == PARAM for u in updates)
    # each kernel's flops, bytes and passes are known: nothing prints as "?"
    assert "?" not in e.text(nodes=False)
    assert 1 <= sum(1 for r in e.rows if "x" in r.reads) <= 6


def test_explain_with_example_inputs_matches_static_shapes():
    static = bn_example((N, D))
    dynamic = bn_example((N, D), static=False)
    fs = static.compile(mode="python")
    fd = dynamic.compile(mode="python")
    unknown = explain(fd)
    assert unknown.bytes_read is None and "?" in unknown.text(nodes=False)
    measured = explain(fd, (N, D), (N, D))
    assert measured.shapes_from == "example inputs"
    big = [r for r in measured.rows if "x" in r.reads]
    assert big and all(r.reads["x"] == BIG for r in big)
    assert measured.bytes_read is not None and "?" not in measured.text(nodes=False)
    # with static types the numbers need no example inputs, and agree
    assert all(r.reads["x"] == BIG for r in explain(fs).rows if "x" in r.reads)
    with pytest.raises(TypeError, match="expected 2 inputs"):
        explain(fd, (N, D))


def test_explain_dot_flops():
    x = T.tensor("float32", (8, 3), name="x")
    W = mg.shared(np.ones((3, 4), "float32"), name="W")
    f = mg.function([x], T.dot(x, W), mode="python")
    r = _row(explain(f), "dot(x, W)")
    assert r.flops == 2 * 8 * 3 * 4
    assert r.bytes_read == (8 * 3 + 3 * 4) * F32 and r.bytes_written == 8 * 4 * F32


def test_explain_rejects_variables():
    with pytest.raises(TypeError, match="compiled function"):
        explain(T.vector("x"))


def test_kernels_cover_the_graph(mode):
    ex = bn_example((N, D))
    f = ex.compile(mode=mode)
    ks = kernels_of(f)
    assert [k.index for k in ks] == list(range(len(ks)))
    covered = [id(n) for k in ks for n in k.nodes]
    assert len(covered) == len(set(covered))
    text = debugprint(f, file="str")
    if mode == "numba":
        assert " k0" in text                   # nodes tagged with their kernel
        assert "# k" in listing(f)


# --- profile ----------------------------------------------------------------------------------

def test_profile_summary_table():
    p = Profile()
    for _ in range(2):
        p.record("a = mul", 0.003)
    p.record("b = add", 0.001)
    p.record("c = mul", 0.001)
    p.record_call(0.010)
    text = p.summary()
    lines = text.splitlines()
    assert lines[2].split()[-3:] == ["a", "=", "mul"]       # the slowest first
    assert "75.0%" in lines[2] and "   2 " in lines[2]
    assert "1 function calls" in text and "outside the kernels" in text
    by_op = p.rows(by="op")
    assert by_op[0] == ("mul", 3, pytest.approx(0.007))
    assert "(1 more)" in p.summary(limit=2)
    with pytest.raises(ValueError):
        p.rows(by="node")
    p.reset()
    assert p.rows() == [] and p.function_calls == 0


def test_profile_records_every_kernel(mode):
    ex = bn_example((N, D))
    f = ex.compile(mode=mode, profile=True)
    xs = ex.sample_inputs()
    for _ in range(3):
        f(*xs)
    prof = f.profile
    assert prof.function_calls == 3
    rows = prof.rows()
    assert rows and all(calls % 3 == 0 for _, calls, _ in rows)
    assert [sec for _, _, sec in rows] == sorted((sec for _, _, sec in rows), reverse=True)
    if mode == "python":
        assert len(rows) == len(f.fgraph.toposort())
        names = {line.split(" = ")[0] for line in listing(f).splitlines() if " = " in line}
        assert {key.split(" = ")[0] for key, _, _ in rows} <= names   # keys use the listing's names
    text = prof.summary()
    assert "share" in text and "3 function calls" in text


# --- comparison views ------------------------------------------------------------------------------

def test_compare_raw_gradient_and_compiled_step():
    ex = bn_example((N, D))
    f = ex.compile(mode="python")
    text = compare(ex.grads, f)
    raw, compiled = len(toposort(ex.grads)), len(f.fgraph.toposort())
    assert text.splitlines()[0].startswith(f"raw: {raw} nodes; rewritten: {compiled} nodes")
    assert node_count(ex.grads) == raw and node_count(f) == compiled
    assert "--- raw" in text and "+++ rewritten" in text
    two = side_by_side(ex.grads, f, width=40)
    assert " | " in two.splitlines()[2]


def test_rewrite_report():
    ex = bn_example((N, D))
    f = ex.compile(mode="python")
    report = rewrite_report(f, limit=3)
    if f.rewrite_log is None:
        pytest.skip("no rewrite pipeline")
    assert report.splitlines()[0].startswith("rewrites")
    assert "1. " in report and (len(f.rewrite_log) <= 3 or "more" in report)
    unrewritten = ex.compile(mode="python", rewrites=None)
    assert "0 firings" in rewrite_report(unrewritten) or "no rewrite log" in rewrite_report(unrewritten)


# --- command line ----------------------------------------------------------------------------------

def test_inspect_command_prints_and_writes(tmp_path):
    out = tmp_path / "pics"
    buf = io.StringIO()
    from minigraph.printing.commands import run_inspect
    import argparse

    args = argparse.Namespace(shape="6,5", axes=None, mode="python", rewrites="fast_run", out=str(out),
                              format="listing")
    assert run_inspect(args, out=buf) == 0
    text = buf.getvalue()
    assert "forward graph" in text and "raw gradient graph" in text and "compiled training step" in text
    assert "# batch statistic" in text
    for stem in ("forward", "gradient", "train_step"):
        dot_text = (out / f"{stem}.dot").read_text()
        nodes, edges = parse_dot(dot_text)
        assert nodes and edges
        if dot_program():
            assert (out / f"{stem}.svg").read_bytes().startswith(b"<?xml")
    assert '#f8d7da' in (out / "gradient.dot").read_text()     # statistics highlighted


def test_inspect_command_without_graphviz(tmp_path, monkeypatch):
    import argparse

    from minigraph.printing.commands import run_inspect

    monkeypatch.setenv("MINIGRAPH_DOT", str(tmp_path / "no-such-dot"))
    buf = io.StringIO()
    args = argparse.Namespace(shape="4,3", axes=None, mode="python", rewrites="none", out=str(tmp_path),
                              format="listing")
    assert run_inspect(args, out=buf) == 0
    assert "no .svg pictures" in buf.getvalue() and "apt-get install graphviz" in buf.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forward.dot", "gradient.dot", "train_step.dot"]


def test_cli_inspect_and_explain(capsys):
    from minigraph.cli import main

    assert main(["inspect", "--shape", "4,3,2,2", "--mode", "python", "--format", "debugprint"]) == 0
    text = capsys.readouterr().out
    assert "axes (0, 2, 3)" in text and "batch_norm_train" in text
    assert main(["explain", "--shape", "6,5", "--mode", "python"]) == 0
    text = capsys.readouterr().out
    assert "largest input" in text and "source (python mode" in text
    with pytest.raises(SystemExit):
        commands_main(["explain", "--shape", "6,x"])


def test_explain_command_numba_source(capsys):
    pytest.importorskip("minigraph.backends.numba")
    assert commands_main(["explain", "--shape", "6,5", "--mode", "numba"]) == 0
    text = capsys.readouterr().out
    assert "generated source" in text and "def " in text


# --- the docs ---------------------------------------------------------------------------------------

def test_docs_blocks_have_generators():
    """Every generated block in the docs names a generator of docs/make_figures.py, and every
    picture the docs show is one it draws (regenerating the docs cannot silently miss one)."""
    import importlib.util
    import re

    docs = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs")
    spec = importlib.util.spec_from_file_location("make_figures", os.path.join(docs, "make_figures.py"))
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    pictures = {name for name, _ in mf.PICTURES}
    used = set()
    for doc in mf.DOCS:
        text = open(os.path.join(docs, doc), encoding="utf-8").read()
        names = re.findall(r"<!-- make_figures: ([a-z_0-9]+) -->", text)
        assert names, doc
        assert text.count("<!-- /make_figures -->") == len(names), doc
        for name in names:
            assert name in mf.BLOCKS, f"{doc}: no generator for block {name}"
            used.add(name)
        for pic in re.findall(r"\(figures/([a-z_0-9]+)\.svg\)", text):
            assert pic in pictures, f"{doc}: figures/{pic}.svg is not drawn by make_figures"
    assert used == set(mf.BLOCKS), f"generators without a block: {set(mf.BLOCKS) - used}"
