"""The disk cache, in fresh processes: a warm start compiles nothing, damaged entries are
detected and rebuilt, and concurrent builds leave a usable cache."""
import glob
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

SCRIPT = r"""
import json, numpy as np, minigraph as mg, minigraph.tensor as T
from minigraph.backends.numba import cache
x = T.matrix("x")
f = mg.function([x], (x * x + 1).sum(axis=0), mode="numba")
out = f(np.arange(6, dtype="float32").reshape(2, 3))
ok = np.allclose(out, (np.arange(6).reshape(2, 3) ** 2 + 1).sum(axis=0))
print(json.dumps(dict(cache.stats(), ok=bool(ok))))
"""


def run(cache_dir, **settings):
    env = dict(os.environ, MINIGRAPH_CACHE_DIR=str(cache_dir), MINIGRAPH_NUM_THREADS="1", **settings)
    env.pop("NUMBA_CACHE_DIR", None)
    if "MINIGRAPH_COMPILED_DRIVER" not in settings:
        env.pop("MINIGRAPH_COMPILED_DRIVER", None)
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_warm_start_skips_compilation_and_damage_is_rebuilt(tmp_path):
    cold = run(tmp_path)
    assert cold["ok"] and cold["compiled"] >= 1 and cold["cache_hits"] == 0
    warm = run(tmp_path)
    assert warm["ok"] and warm["compiled"] == 0 and warm["cache_hits"] == cold["compiled"]

    # truncate every compiled entry and garble every index: detected, recompiled, right answers
    data = glob.glob(str(tmp_path / "kernels" / "__pycache__" / "*.nbc"))
    index = glob.glob(str(tmp_path / "kernels" / "__pycache__" / "*.nbi"))
    assert data and index
    for path in data:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    damaged = run(tmp_path)
    assert damaged["ok"] and damaged["corrupt"] >= 1 and damaged["compiled"] == cold["compiled"]
    for path in glob.glob(str(tmp_path / "kernels" / "__pycache__" / "*.nbi")):
        with open(path, "wb") as f:
            f.write(b"not a pickle")
    garbled = run(tmp_path)
    assert garbled["ok"] and garbled["corrupt"] >= 1 and garbled["compiled"] == cold["compiled"]
    assert run(tmp_path)["compiled"] == 0  # and the rebuilt entries serve the next process

    # a damaged kernel module is rewritten from the source held in memory; its compiled
    # code, keyed by content, still serves
    modules = glob.glob(str(tmp_path / "kernels" / "k_*.py"))
    assert modules
    with open(modules[0], "w") as f:
        f.write("def kernel(:\n")
    again = run(tmp_path)
    assert again["ok"] and again["modules_written"] == 1 and again["compiled"] == 0
    with open(modules[0]) as f:
        assert f.read().startswith("# minigraph kernel module")


def test_compiled_driver_is_cached_too(tmp_path):
    cold = run(tmp_path, MINIGRAPH_COMPILED_DRIVER="0")
    assert cold["ok"] and cold["compiled"] >= 2  # the loop and the driver calling it
    warm = run(tmp_path, MINIGRAPH_COMPILED_DRIVER="0")
    assert warm["ok"] and warm["compiled"] == 0 and warm["cache_hits"] >= 1


def test_concurrent_processes_share_the_cache(tmp_path):
    env = dict(os.environ, MINIGRAPH_CACHE_DIR=str(tmp_path), MINIGRAPH_NUM_THREADS="1")
    env.pop("MINIGRAPH_COMPILED_DRIVER", None)
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["ok"] for r in results)
    after = run(tmp_path)
    assert after["ok"] and after["compiled"] == 0 and after["corrupt"] == 0
    assert not glob.glob(str(tmp_path / "kernels" / "*.tmp.*"))


def test_cache_dir_is_read_at_use_time(tmp_path, monkeypatch):
    from minigraph.backends.numba import cache

    monkeypatch.setenv("MINIGRAPH_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache.cache_dir() == str(tmp_path / "elsewhere")
    monkeypatch.delenv("MINIGRAPH_CACHE_DIR")
    assert cache.cache_dir().endswith(os.path.join(".cache", "minigraph"))
