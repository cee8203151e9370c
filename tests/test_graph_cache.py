"""The rewritten-graph cache: a compile of a graph rewritten before loads the result in place of
rewriting, with the same outcome; anything that could change the rewrites changes the key;
damaged entries are rewritten; graphs the key cannot describe are not cached."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.compile import graph_cache
from minigraph.graph.basic import Apply, Op
from minigraph.graph.fg import FunctionGraph


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """An empty graph cache for each test (the kernels stay in the suite's cache)."""
    monkeypatch.setattr(graph_cache, "cache_dir", lambda: str(tmp_path))
    monkeypatch.delenv("MINIGRAPH_GRAPH_CACHE", raising=False)


def build_step(mode="python", depth=4, width=5, epsilon=1e-4, lr=0.01, name="W", rewrites="fast_run",
               compile=mg.function):
    """A training step of a small batch-normalized MLP (350 nodes before rewriting), with
    its shared variables; every call compiles from this one line, so equal arguments give
    equal graphs."""
    rng = np.random.default_rng(0)
    x, y = T.matrix("x"), T.ivector("y")
    params, updates, h = [], [], x
    for k in range(depth):
        w = mg.shared(rng.standard_normal((width, width)).astype("float32"), name=f"{name}{k}")
        gamma = mg.shared(np.ones(width, "float32"), name=f"gamma{k}")
        beta = mg.shared(np.zeros(width, "float32"), name=f"beta{k}")
        rmean = mg.shared(np.zeros(width, "float32"), name=f"mean{k}")
        rvar = mg.shared(np.ones(width, "float32"), name=f"var{k}")
        out, _, _, new_mean, new_var = T.nnet.bn.batch_normalization_train(
            T.dot(h, w), gamma, beta, axes="per-activation", epsilon=epsilon, running_mean=rmean, running_var=rvar)
        h = T.tanh(out)
        params += [w, gamma, beta]
        updates += [(rmean, new_mean), (rvar, new_var)]
    cost = -T.mean(T.log(T.nnet.softmax(h))[T.arange(y.shape[0]), y])
    updates += [(p, p - np.float32(lr) * g) for p, g in zip(params, mg.grad(cost, params))]
    f = compile([x, y], cost, updates=updates, mode=mode, rewrites=rewrites)
    return f, params


def data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((8, 5)).astype("float32"), rng.integers(0, 5, 8).astype("int32")


def counts_since(before):
    return {k: v - before[k] for k, v in graph_cache.stats().items()}


def test_second_compile_restores_the_rewritten_graph(mode):
    before = graph_cache.stats()
    f1, params1 = build_step(mode)
    assert counts_since(before) == {"hits": 0, "stored": 1, "corrupt": 0}
    assert f1.rewrite_log.nodes_before >= graph_cache.MIN_NODES and not f1.rewrite_log.restored

    f2, params2 = build_step(mode)
    assert counts_since(before) == {"hits": 1, "stored": 1, "corrupt": 0}
    log1, log2 = f1.rewrite_log, f2.rewrite_log
    assert log2.restored and "restored from the compile cache" in log2.summary()
    assert log2.counts() == log1.counts() and [str(e) for e in log2] == [str(e) for e in log1]
    assert f2.source() == f1.source()
    assert [str(n.op) for n in f2.fgraph.toposort()] == [str(n.op) for n in f1.fgraph.toposort()]

    # the restored graph reads and updates the second function's own shared variables
    xv, yv = data()
    w1_before = params1[0].get_value()
    c1, c2 = f1(xv, yv), f2(xv, yv)
    np.testing.assert_array_equal(c1, c2)
    for p1, p2 in zip(params1, params2):
        np.testing.assert_array_equal(p1.get_value(), p2.get_value())
    assert not np.array_equal(params2[0].get_value(), w1_before)
    params2[0].set_value(np.zeros((5, 5), "float32"))
    f2(xv, yv)
    assert not np.array_equal(params1[0].get_value(), params2[0].get_value())


@pytest.mark.parametrize("change", [dict(epsilon=1e-3), dict(lr=0.02), dict(name="V"), dict(depth=5),
                                    dict(width=6), dict(rewrites="fast_run_fold_bn")])
def test_anything_that_changes_the_graph_changes_the_key(change):
    before = graph_cache.stats()
    build_step()
    build_step(**change)  # an op's parameter, a constant, a name, the wiring, a static length, the pipeline
    assert counts_since(before) == {"hits": 0, "stored": 2, "corrupt": 0}


def test_the_calling_line_is_in_the_key():
    """Nodes the rewrites make record the line that called mg.function (errors name it)."""
    before = graph_cache.stats()
    build_step()
    build_step(compile=lambda *a, **k: mg.function(*a, **k))
    assert counts_since(before) == {"hits": 0, "stored": 2, "corrupt": 0}


def test_damaged_entries_are_rewritten(tmp_path):
    f0, _ = build_step()
    (path,) = (tmp_path / "graphs").iterdir()
    data_ok = path.read_bytes()
    for damage in (data_ok[: len(data_ok) // 2], data_ok[:-1] + bytes([data_ok[-1] ^ 1]), b""):
        path.write_bytes(damage)
        before = graph_cache.stats()
        f, _ = build_step()
        assert counts_since(before) == {"hits": 0, "stored": 1, "corrupt": 1}
        assert not f.rewrite_log.restored and f.source() == f0.source()
        assert build_step()[0].rewrite_log.restored  # stored again


def test_graphs_not_cached(monkeypatch):
    x = T.matrix("x")
    small = FunctionGraph([x], [T.tanh(x).sum()])
    assert len(small) < graph_cache.MIN_NODES and graph_cache.key(small, "fast_run") is None

    monkeypatch.setattr(graph_cache, "MIN_NODES", 1)
    assert graph_cache.key(small, "fast_run") is not None
    assert graph_cache.key(small, None) is None
    monkeypatch.setenv("MINIGRAPH_GRAPH_CACHE", "0")
    assert graph_cache.key(small, "fast_run") is None
    monkeypatch.delenv("MINIGRAPH_GRAPH_CACHE")

    @dataclasses.dataclass(frozen=True)
    class Twice(Op):  # an op defined outside minigraph: its code is not in the key
        def make_node(self, v):
            return Apply(self, [v], [v.type])

        def perform(self, node, inputs):
            return (inputs[0] * 2,)

    from minigraph.rewriting import PIPELINES, GlobalPass
    from minigraph.rewriting.merge import merge

    monkeypatch.setitem(PIPELINES, "mine", lambda: [GlobalPass("merge", merge)])  # a user's pipeline
    assert graph_cache.key(small, "mine") is None
    monkeypatch.setitem(PIPELINES, "mine", lambda: [GlobalPass("own", lambda fgraph, log: 0)])
    monkeypatch.setattr(PIPELINES["mine"], "__module__", "minigraph.rewriting")
    assert graph_cache.key(small, "mine") is None  # (a user's function in minigraph's pipeline)
    monkeypatch.setitem(PIPELINES, "mine", PIPELINES["fast_compile"])
    assert graph_cache.key(small, "mine") is not None

    own = FunctionGraph([x], [Twice()(x).sum()])
    assert graph_cache.key(own, "fast_run") is None
    before = graph_cache.stats()
    mg.function([x], Twice()(x).sum(), mode="python")
    assert counts_since(before) == {"hits": 0, "stored": 0, "corrupt": 0}


def test_op_parameters_are_described_exactly():
    d = graph_cache._describe
    assert len({d(1), d(True), d(1.0), d(np.float32(1)), d(np.float64(1)), d("1"), d((1,)), d(None)}) == 8
    assert d(np.array([1.0, 2.0])) != d(np.array([1.0, 2.5])) != d(np.array([1, 2]))
    assert d(slice(1, None)) != d(slice(None, 1))
    with pytest.raises(graph_cache._Uncacheable):
        d(object())


SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from test_graph_cache import build_step, data
from minigraph.compile import graph_cache
f, params = build_step()
cost = float(f(*data()))
print(json.dumps(dict(graph_cache.stats(), cost=cost, w=params[0].get_value().tolist(), log=f.rewrite_log.summary())))
"""


def test_a_second_process_skips_the_rewrites(tmp_path):
    env = dict(os.environ, MINIGRAPH_CACHE_DIR=str(tmp_path))

    def run():
        res = subprocess.run([sys.executable, "-c", SCRIPT, os.path.dirname(__file__)], env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert (first["hits"], first["stored"], second["hits"], second["stored"]) == (0, 1, 1, 0)
    assert second["cost"] == first["cost"] and second["w"] == first["w"]
    assert second["log"].splitlines()[1:] == first["log"].splitlines()[1:]
