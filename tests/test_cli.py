"""The ``minigraph`` command line, through subprocess as a user runs it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minigraph import cli
from minigraph.datasets import write_idx

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args, cwd=None, timeout=300):
    # one BLAS thread: two pytest workers on a 2-core runner otherwise fight over the cores
    env = {**os.environ, "CI": "1", "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minigraph", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    proc = run_cli("train", "--quick", "--mode", "python", "--out", str(out))
    return proc, out


def test_train_quick_writes_history_config_and_plots(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr
    for name in ("loss.png", "accuracy.png", "curves.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        import matplotlib.image

        img = matplotlib.image.imread(str(out / name))
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0  # not blank
    history = json.loads((out / "history.json").read_text())
    assert set(history["variants"]) == {"bn", "plain"}
    assert history["dataset"]["name"] == "digits"
    for name, run in history["variants"].items():
        assert {"step_loss", "epochs", "compile_time", "steps_per_second", "summary"} <= set(run)
        epochs = run["epochs"]
        assert len(epochs) == 5
        assert set(epochs[0]) == {"epoch", "steps", "train_loss", "test_loss", "test_accuracy", "wall_time"}
        assert len(run["step_loss"]) == sum(e["steps"] for e in epochs)
        assert epochs[-1]["train_loss"] < epochs[0]["train_loss"], name  # the loss decreases
        assert epochs[-1]["test_loss"] < epochs[0]["test_loss"], name
        assert np.mean(run["step_loss"][-5:]) < np.mean(run["step_loss"][:5]), name
    config = json.loads((out / "config.json").read_text())
    assert config["layers"] == 3 and config["units"] == 64 and config["lr"] == 0.01 and config["mode"] == "python"


def test_train_prints_the_final_table(quick_run):
    proc, out = quick_run
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("variant"))
    assert "final train loss" in lines[head] and "test accuracy" in lines[head]
    assert "steps/s" in lines[head] and "compile s" in lines[head]
    rows = {line.split()[0]: line.split() for line in lines[head + 2:head + 4]}
    history = json.loads((out / "history.json").read_text())
    for name in ("bn", "plain"):
        acc = history["variants"][name]["epochs"][-1]["test_accuracy"]
        assert float(rows[name][2]) == pytest.approx(acc, abs=1e-4)
    assert "Traceback" not in proc.stderr


def test_train_single_variant_and_flags(tmp_path):
    out = tmp_path / "o"
    proc = run_cli("train", "--no-bn", "--layers", "2", "--units", "16", "--epochs", "2", "--dropout", "0",
                   "--activation", "relu", "--lr", "0.05", "--batch-size", "50", "--mode", "python", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    history = json.loads((out / "history.json").read_text())
    assert list(history["variants"]) == ["plain"]
    assert len(history["variants"]["plain"]["epochs"]) == 2
    config = json.loads((out / "config.json").read_text())
    assert (config["layers"], config["units"], config["activation"], config["batch_size"], config["dropout"]) == \
        (2, 16, "relu", 50, [])


def test_missing_dataset_exits_with_a_message(tmp_path):
    missing = tmp_path / "nowhere"
    proc = run_cli("train", "--dataset", "mnist", "--data-dir", str(missing), "--quick")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert str(missing) in proc.stderr and "--dataset digits" in proc.stderr and "--data-dir" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # one paragraph


def test_broken_dataset_exits_with_a_message(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    write_idx(str(data / "train-images-idx3-ubyte.gz"), rng.integers(0, 255, (20, 4, 4), dtype=np.uint8))
    write_idx(str(data / "train-labels-idx1-ubyte.gz"), rng.integers(0, 9, 20, dtype=np.uint8))
    write_idx(str(data / "t10k-images-idx3-ubyte.gz"), rng.integers(0, 255, (5, 4, 4), dtype=np.uint8))
    (data / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02")
    proc = run_cli("train", "--dataset", "fashion-mnist", "--data-dir", str(data), "--quick")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "t10k-labels-idx1-ubyte" in proc.stderr and "truncated" in proc.stderr and "--dataset digits" in proc.stderr


def test_bad_flags_are_usage_errors():
    proc = run_cli("train", "--dropout", "1.5")
    assert proc.returncode == 2 and "--dropout" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("train", "--bn", "--no-bn")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_quick_defaults_and_explicit_flags_win():
    args = cli.build_parser().parse_args(["train", "--quick", "--units", "32"])
    config = cli.train_config(args)
    assert (config.layers, config.units, config.epochs) == (cli.QUICK["layers"], 32, cli.QUICK["epochs"])
    assert config.variants == ("bn", "plain")
    full = cli.train_config(cli.build_parser().parse_args(["train"]))
    assert (full.layers, full.units, full.lr, full.batch_size, full.dropout, full.activation) == \
        (10, 784, 0.01, 100, (0.1, 0.5), "tanh")
    assert full.max_train is None and full.epochs == cli.DEFAULT_EPOCHS["digits"]
    fashion = cli.train_config(cli.build_parser().parse_args(["train", "--dataset", "fashion-mnist"]))
    assert fashion.epochs == 5
    assert cli.train_config(cli.build_parser().parse_args(["train", "--bn"])).variants == ("bn",)


def test_threads_are_limited_during_training():
    from threadpoolctl import threadpool_info

    assert cli.build_parser().parse_args(["train"]).threads == 1
    with cli.limit_threads(1, "python"):
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    with cli.limit_threads(None, "python"):  # no limit asked: nothing changes
        pass
