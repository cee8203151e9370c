"""Checkpoints: mg.save / mg.load round trips, exact random-stream resumption, mismatch
errors, the documented file format, and atomic writes (a process killed mid-write)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T
from minigraph.checkpoint import CheckpointError, read_manifest


def _params():
    W = mg.shared(np.arange(12, dtype="float32").reshape(3, 4), name="W")
    b = mg.shared(np.array([1.5, -2.0, 0.25, 3.0]), name="b")
    steps = mg.shared(np.array(7, dtype="int64"), name="steps")
    return [W, b, steps]


def test_round_trip_writes_exactly_path(tmp_path):
    params = _params()
    path = tmp_path / "model.ckpt"
    mg.save(path, params, metadata={"epoch": 3})
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]  # no suffix added, no temp file left
    fresh = [mg.shared(np.zeros_like(p.get_value()), name=p.name) for p in params]
    meta = mg.load(str(path), fresh)
    assert meta == {"epoch": 3}
    for p, q in zip(params, fresh):
        np.testing.assert_array_equal(q.get_value(), p.get_value())
        assert q.get_value().dtype == p.get_value().dtype


def test_format_is_npz_with_json_manifest_and_no_pickle(tmp_path):
    params = _params()
    path = tmp_path / "ckpt"
    mg.save(path, params)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format"] == "minigraph-checkpoint" and manifest["version"] == 1
    entries = {e["name"]: e for e in manifest["entries"]}
    assert entries["W"] == {"name": "W", "kind": "tensor", "array": entries["W"]["array"], "dtype": "float32",
                            "shape": [3, 4]}
    assert entries["steps"]["shape"] == [] and entries["steps"]["dtype"] == "int64"
    # plain numpy reads every array, with pickle refused
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz[entries["b"]["array"]], params[1].get_value())


def test_load_accepts_dicts_and_models(tmp_path):
    W, b, _ = _params()
    path = tmp_path / "ckpt"
    mg.save(path, {"layer0.W": W, "layer0.b": b})

    class Model:
        def __init__(self):
            self.params = [mg.shared(np.zeros((3, 4), "float32"), name="layer0.W")]
            self.running_stats = [mg.shared(np.zeros(4), name="layer0.b")]

    m = Model()
    mg.load(path, m)
    np.testing.assert_array_equal(m.params[0].get_value(), W.get_value())
    np.testing.assert_array_equal(m.running_stats[0].get_value(), b.get_value())


def test_an_mlp_saves_its_parameters_statistics_and_dropout_streams(tmp_path):
    from minigraph.nn import MLP

    def make(seed):
        return MLP(n_in=4, n_classes=3, n_layers=2, units=5, seed=seed)

    a = make(0)
    x = T.matrix("x")
    f = mg.function([x], a(x, training=True), updates=a.updates, mode="python")
    xs = np.random.default_rng(0).standard_normal((6, 4)).astype("float32")
    f(xs)  # moves the running statistics and the dropout streams
    mg.save(tmp_path / "mlp", a)
    names = [e["name"] for e in read_manifest(tmp_path / "mlp")["entries"]]
    assert "dense1.W" in names and "bn1.running_mean" in names and "rng0" in names
    b = make(1)
    # build the graph first: dropout streams make their generators when the graph is built
    g = mg.function([x], b(x, training=True), updates=b.updates, mode="python")
    mg.load(tmp_path / "mlp", b)
    np.testing.assert_array_equal(g(xs), f(xs))  # same weights, statistics and dropout masks


def test_mismatches_are_all_named_and_nothing_is_set(tmp_path):
    path = tmp_path / "ckpt"
    mg.save(path, _params())
    W = mg.shared(np.zeros((4, 3), "float32"), name="W")          # wrong shape
    b = mg.shared(np.zeros(4, "float32"), name="b")               # wrong dtype
    steps = mg.shared(np.array(0, dtype="int64"), name="steps")   # fine
    gamma = mg.shared(np.zeros(4, "float32"), name="gamma")       # not in the file
    with pytest.raises(ValueError) as info:
        mg.load(path, [W, b, steps, gamma])
    message = str(info.value)
    assert "'W'" in message and "(3, 4)" in message and "(4, 3)" in message
    assert "'b'" in message and "float64" in message and "float32" in message
    assert "'gamma'" in message
    assert "'steps'" not in message
    # all or nothing: the matching variable was not set either
    assert steps.get_value() == 0


def test_missing_names_raise_key_error_and_extra_entries_are_strict(tmp_path):
    path = tmp_path / "ckpt"
    mg.save(path, _params())
    other = mg.shared(np.zeros(2), name="other")
    with pytest.raises(KeyError, match="'other'"):
        mg.load(path, [other] + _params(), strict=True)
    with pytest.raises(ValueError, match="in the checkpoint but not among the parameters: 'b', 'steps'"):
        mg.load(path, _params()[:1])
    W = mg.shared(np.zeros((3, 4), "float32"), name="W")
    mg.load(path, [W], strict=False)
    assert W.get_value()[2, 3] == 11


def test_save_refuses_unnamed_and_duplicate_names(tmp_path):
    with pytest.raises(ValueError, match="without a name"):
        mg.save(tmp_path / "a", [mg.shared(np.zeros(2))])
    with pytest.raises(ValueError, match="'W'"):
        mg.save(tmp_path / "a", [mg.shared(np.zeros(2), name="W"), mg.shared(np.ones(2), name="W")])
    assert not os.listdir(tmp_path)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a minigraph checkpoint"):
        mg.load(bad, _params())
    np.savez(tmp_path / "plain.npz", W=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a minigraph checkpoint"):
        read_manifest(tmp_path / "plain.npz")


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "ckpt"
    mg.save(path, [mg.shared(np.zeros(2), name="W")])
    # rewrite the array member as a pickled object array: loading must refuse it
    with zipfile.ZipFile(path) as zf:
        manifest = zf.read("manifest.json")
    evil = tmp_path / "evil"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", manifest)
        with zf.open("a0.npy", "w") as f:
            np.lib.format.write_array(f, np.array([1, "x"], dtype=object), allow_pickle=True)
    W = mg.shared(np.zeros(2), name="W")
    with pytest.raises(CheckpointError, match="cannot read the array of 'W'.*allow_pickle"):
        mg.load(evil, [W])
    np.testing.assert_array_equal(W.get_value(), np.zeros(2))


def test_random_streams_resume_exactly(tmp_path, mode):
    """Dropout masks after a save/load equal those of an uninterrupted run."""
    def build():
        srng = mg.RandomStreams(42)
        x = T.vector("x")
        mask = srng.binomial(x.shape, p=0.5, dtype="float32")
        noise = srng.normal((3,))
        return srng, mg.function([x], [x * mask, noise], mode=mode)

    srng, f = build()
    xs = np.arange(1, 9, dtype="float32")
    f(xs)
    mg.save(tmp_path / "ckpt", srng)
    expected = [f(xs) for _ in range(3)]

    srng2, g = build()
    g(xs)
    g(xs)  # advance differently, then restore
    mg.load(tmp_path / "ckpt", srng2)
    got = [g(xs) for _ in range(3)]
    for (a1, n1), (a2, n2) in zip(expected, got):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(n1, n2)


def test_generator_with_array_state_round_trips(tmp_path):
    from minigraph.random import GeneratorType, RandomGeneratorSharedVariable

    gen = np.random.Generator(np.random.MT19937(5))
    gen.random(10)
    var = RandomGeneratorSharedVariable(GeneratorType(), gen, name="mt")
    mg.save(tmp_path / "ckpt", [var])
    expected = gen.random(4)
    var2 = RandomGeneratorSharedVariable(GeneratorType(), np.random.Generator(np.random.MT19937(0)), name="mt")
    mg.load(tmp_path / "ckpt", [var2])
    np.testing.assert_array_equal(var2.get_value(borrow=True).random(4), expected)


def test_tensor_and_generator_kinds_must_agree(tmp_path):
    srng = mg.RandomStreams(0)
    srng.uniform((2,))
    mg.save(tmp_path / "ckpt", srng)
    with pytest.raises(ValueError, match="'rng0'.*random generator"):
        mg.load(tmp_path / "ckpt", [mg.shared(np.zeros(2), name="rng0")])


_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import minigraph as mg
    import minigraph.checkpoint as ck

    path = sys.argv[1]
    W = mg.shared(np.full((256, 256), 1.0), name="W")
    b = mg.shared(np.full(256, 1.0), name="b")
    mg.save(path, [W, b], metadata={"version": 1})
    W.set_value(np.full((256, 256), 2.0))
    b.set_value(np.full(256, 2.0))

    real = ck._write_array
    def slow(zf, key, arr):
        real(zf, key, arr)
        print("mid-write", flush=True)  # the first array is half in the new file: kill me now
        time.sleep(60)
    ck._write_array = slow
    mg.save(path, [W, b], metadata={"version": 2})
""")


def test_killed_during_write_leaves_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "mid-write", line
        assert any(name.endswith(".tmp") for name in os.listdir(tmp_path))  # the new one is being written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    W = mg.shared(np.zeros((256, 256)), name="W")
    b = mg.shared(np.zeros(256), name="b")
    assert mg.load(path, [W, b]) == {"version": 1}
    assert (W.get_value() == 1.0).all() and (b.get_value() == 1.0).all()
    # the next save succeeds and replaces it
    W.set_value(np.full((256, 256), 3.0))
    mg.save(path, [W, b], metadata={"version": 3})
    assert read_manifest(path)["metadata"] == {"version": 3}


def test_failed_save_keeps_previous_and_cleans_up(tmp_path):
    path = tmp_path / "ckpt"
    W = mg.shared(np.ones(3), name="W")
    mg.save(path, [W])
    with pytest.raises(TypeError, match="JSON"):
        mg.save(path, [W], metadata={"bad": object()})
    assert os.listdir(tmp_path) == ["ckpt"]
    V = mg.shared(np.zeros(3), name="W")
    mg.load(path, [V])
    np.testing.assert_array_equal(V.get_value(), np.ones(3))


# --- minigraph train: a checkpoint each epoch, --resume, Ctrl-C --------------------------------

TRAIN_ARGS = ["train", "--bn", "--quick", "--epochs", "3", "--layers", "2", "--units", "16", "--mode", "python",
              "--no-progress"]

_KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    import minigraph.checkpoint as ck

    kill_at = int(sys.argv[1])
    real_save, real_write = ck.save, ck._write_array
    count = [0]

    def dying_write(zf, key, arr):
        real_write(zf, key, arr)
        os.kill(os.getpid(), signal.SIGKILL)  # in the middle of the archive

    def save(*args, **kwargs):
        count[0] += 1
        if count[0] == kill_at:
            ck._write_array = dying_write
        return real_save(*args, **kwargs)

    ck.save = save
    from minigraph.cli import main
    sys.exit(main(sys.argv[2:]))
""")

_CTRL_C_AT_STEP = textwrap.dedent("""
    import os, signal, sys
    from minigraph.compile.function import Function

    stop_at = int(sys.argv[1])
    real_call = Function.__call__
    steps = [0]

    def call(self, *args, **kwargs):
        if self.name == "train_step":
            steps[0] += 1
            if steps[0] == stop_at:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives as this step starts
        return real_call(self, *args, **kwargs)

    Function.__call__ = call
    from minigraph.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _train(*args, script=None, check=True):
    cmd = [sys.executable] + (["-c", script] if script else ["-m", "minigraph"]) + [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _final_state(out):
    """Every array and generator state of the run's checkpoint, and its step losses."""
    path = out / "checkpoint-bn.ckpt"
    manifest = read_manifest(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {e["name"]: npz[e["array"]] for e in manifest["entries"] if e["kind"] == "tensor"}
    generators = {e["name"]: e["state"] for e in manifest["entries"] if e["kind"] == "generator"}
    with open(out / "history.json") as f:
        losses = json.load(f)["variants"]["bn"]["step_loss"]
    return arrays, generators, losses, manifest["metadata"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "full"
    _train(*TRAIN_ARGS, "--out", out)
    return _final_state(out)


def _assert_same_run(got, want):
    arrays, generators, losses, meta = got
    w_arrays, w_generators, w_losses, w_meta = want
    assert sorted(arrays) == sorted(w_arrays)
    assert any(name.endswith("running_mean") for name in arrays) and generators  # BN statistics, dropout streams
    for name in arrays:
        np.testing.assert_array_equal(arrays[name], w_arrays[name], err_msg=name)  # bit for bit
    assert generators == w_generators
    assert losses == w_losses and len(losses) == 30
    assert meta["epoch"] == w_meta["epoch"] == 4


def test_train_killed_during_a_checkpoint_write_resumes_bit_for_bit(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _train(2, *TRAIN_ARGS, "--out", out, script=_KILL_DURING_SAVE, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    # killed while writing epoch 2's checkpoint (reported after the checkpoint is written)
    assert "epoch   1" in proc.stdout and "epoch   2" not in proc.stdout
    # epoch 1's checkpoint survived whole: training resumes at epoch 2
    assert read_manifest(out / "checkpoint-bn.ckpt")["metadata"]["epoch"] == 2
    resumed = _train("train", "--resume", out, "--no-progress")
    assert "resuming from" in resumed.stdout
    _assert_same_run(_final_state(out), uninterrupted)


def test_ctrl_c_stops_after_the_step_and_resumes_bit_for_bit(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _train(14, *TRAIN_ARGS, "--out", out, script=_CTRL_C_AT_STEP, check=False)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "--resume" in proc.stderr
    with open(out / "history.json") as f:
        history = json.load(f)["variants"]["bn"]
    assert history["interrupted"] and len(history["step_loss"]) == 14  # the 14th step finished
    meta = read_manifest(out / "checkpoint-bn.ckpt")["metadata"]
    assert (meta["epoch"], meta["steps_done"]) == (2, 4)
    _train("train", "--resume", out, "--no-progress")
    _assert_same_run(_final_state(out), uninterrupted)
