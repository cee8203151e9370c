"""The seed notes' experiment: the same MLP trained with and without batch normalization,
recorded, tabulated and plotted.  ``minigraph train`` and ``examples/seed_experiment.py`` run it."""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from minigraph.nn.model import MLP
from minigraph.nn.training import History, Trainer

VARIANTS = {"bn": "with batch norm", "plain": "without batch norm"}


@dataclass
class ExperimentConfig:
    """Everything that defines a run; the defaults are the seed notes' configuration."""

    dataset: str = "digits"
    data_dir: str | None = None
    variants: tuple = ("bn", "plain")
    layers: int = 10
    units: int = 784
    activation: str = "tanh"
    lr: float = 0.01
    optimizer: str = "sgd"
    batch_size: int = 100
    epochs: int = 20
    dropout: tuple = (0.1, 0.5)
    seed: int = 0
    mode: str | None = None
    max_train: int | None = None  # use only the first examples (quick runs)
    max_test: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dictionary."""
        d = asdict(self)
        d["variants"], d["dropout"] = list(self.variants), list(self.dropout)
        return d


@dataclass
class VariantResult:
    """One variant's trainer and history."""

    name: str
    history: History
    trainer: Trainer | None  # None when read back from history.json

    def summary(self) -> dict:
        """The final-table row."""
        h = self.history
        last = h.epochs[-1] if h.epochs else None
        return {"variant": self.name, "final_train_loss": last.train_loss if last else float("nan"),
                "test_accuracy": last.test_accuracy if last else float("nan"),
                "steps_per_second": h.steps_per_second, "compile_time": h.compile_time,
                "first_step_time": h.first_step_time,
                "mode": self.trainer.mode if self.trainer is not None else ""}


def build_model(config: ExperimentConfig, variant: str, n_in: int, n_classes: int) -> MLP:
    """The MLP for one variant (same seed, so both start from the same weights where shapes agree)."""
    return MLP(n_in=n_in, n_classes=n_classes, n_layers=config.layers, units=config.units,
               activation=config.activation, batch_norm=(variant == "bn"), dropout=config.dropout, seed=config.seed)


def run_experiment(config: ExperimentConfig, dataset, progress: bool | None = None, log=print,
                   checkpoint_dir: str | None = None, resume: bool = False) -> list[VariantResult]:
    """Train every variant of ``config`` on ``dataset``; returns their results.

    ``checkpoint_dir``: each variant writes ``checkpoint-<variant>.ckpt`` there after every
    epoch; with ``resume`` existing ones are continued.  Ctrl-C stops after the current step
    (with a checkpoint) and the variants not started yet are skipped."""
    x_train, y_train = dataset.x_train[:config.max_train], dataset.y_train[:config.max_train]
    x_test, y_test = dataset.x_test[:config.max_test], dataset.y_test[:config.max_test]
    results = []
    for variant in config.variants:
        model = build_model(config, variant, dataset.n_features, dataset.n_classes)
        trainer = Trainer(model, lr=config.lr, optimizer=config.optimizer, mode=config.mode)
        log(f"[{variant}] {VARIANTS[variant]}: {model!r}; compiled in {trainer.compile_time:.2f} s "
            f"(mode {trainer.mode})")

        def report(rec, variant=variant):
            log(f"[{variant}] epoch {rec.epoch:3d}  train loss {rec.train_loss:.4f}  test loss {rec.test_loss:.4f}  "
                f"test acc {rec.test_accuracy:.4f}  {rec.wall_time:.1f} s")

        path = checkpoint_path(checkpoint_dir, variant) if checkpoint_dir else None
        if resume and path and os.path.exists(path):
            log(f"[{variant}] resuming from {path}")
        history = trainer.fit(x_train, y_train, x_test, y_test, epochs=config.epochs, batch_size=config.batch_size,
                              seed=config.seed, progress=progress, desc=variant, on_epoch=report,
                              checkpoint=path, resume=resume)
        results.append(VariantResult(variant, history, trainer))
        if history.interrupted:
            log(f"[{variant}] interrupted after step {history.steps}" + (f"; checkpoint {path}" if path else ""))
            break
    return results


def checkpoint_path(out_dir: str, variant: str) -> str:
    """Where ``variant``'s training checkpoint lives under ``out_dir``."""
    return os.path.join(out_dir, f"checkpoint-{variant}.ckpt")


def write_config(out_dir: str, config: ExperimentConfig) -> str:
    """config.json under ``out_dir`` (written when a run starts, so that --resume finds it)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "config.json")
    with open(path, "w") as f:
        json.dump({**config.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "python": platform.python_version(), "numpy": np.__version__}, f, indent=1)
    return path


def read_config(out_dir: str) -> ExperimentConfig:
    """The ExperimentConfig a run recorded in ``out_dir``/config.json."""
    with open(os.path.join(out_dir, "config.json")) as f:
        d = json.load(f)
    known = {k: v for k, v in d.items() if k in ExperimentConfig.__dataclass_fields__}
    known["variants"], known["dropout"] = tuple(known["variants"]), tuple(known["dropout"])
    return ExperimentConfig(**known)


def format_table(results: list[VariantResult]) -> str:
    """The final table: one row per variant.  "compile s" is building and linking the graphs;
    "first step s" the first call, which includes the numba backend's JIT compile; "steps/s"
    counts the steps after it."""
    head = (f"{'variant':<8} {'final train loss':>16} {'test accuracy':>13} {'steps/s':>9} {'compile s':>9} "
            f"{'first step s':>12}  mode")
    rows = [head, "-" * len(head)]
    for r in results:
        s = r.summary()
        rows.append(f"{s['variant']:<8} {s['final_train_loss']:>16.4f} {s['test_accuracy']:>13.4f} "
                    f"{s['steps_per_second']:>9.1f} {s['compile_time']:>9.2f} {s['first_step_time']:>12.2f}  {s['mode']}")
    return "\n".join(rows)


def write_results(out_dir: str, config: ExperimentConfig, dataset, results: list[VariantResult]) -> dict:
    """Write history.json, config.json and the plots under ``out_dir``; returns {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {"history": os.path.join(out_dir, "history.json"), "config": os.path.join(out_dir, "config.json")}
    history = {"dataset": {"name": dataset.name, "source": dataset.source, "n_train": int(len(dataset.x_train)),
                           "n_test": int(len(dataset.x_test)), "n_features": dataset.n_features,
                           "n_classes": dataset.n_classes},
               "variants": {r.name: {**r.history.to_dict(), "summary": r.summary()} for r in results}}
    with open(paths["history"], "w") as f:
        json.dump(history, f, indent=1)
    with open(paths["config"], "w") as f:
        json.dump({**config.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "python": platform.python_version(), "numpy": np.__version__}, f, indent=1)
    paths.update(plot_results(out_dir, results, title=_title(dataset.name, config.to_dict())))
    return paths


def _title(dataset: str, config: dict) -> str:
    return f"{dataset}: {config['layers']} x {config['units']} {config['activation']}, lr {config['lr']}"


def _smooth(values, window: int) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)  # a growing window at the start
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


COLORS = {"bn": "tab:blue", "plain": "tab:orange"}


def _plot_loss(ax, results):
    for r in results:
        h, color = r.history, COLORS.get(r.name)
        steps = np.arange(1, h.steps + 1)
        window = max(1, h.steps // 50)
        ax.plot(steps, h.step_loss, color=color, alpha=0.2, linewidth=0.8)
        ax.plot(steps, _smooth(h.step_loss, window), color=color, label=f"{VARIANTS[r.name]} (train, smoothed)")
        ends = np.cumsum(h.column("steps"))
        ax.plot(ends, h.column("test_loss"), "o--", color=color, markersize=3, linewidth=1,
                label=f"{VARIANTS[r.name]} (test, per epoch)")
    ax.set_xlabel("training step")
    ax.set_ylabel("negative log likelihood")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _plot_accuracy(ax, results):
    for r in results:
        h = r.history
        ax.plot(h.column("epoch"), h.column("test_accuracy"), "o-", color=COLORS.get(r.name), markersize=3,
                label=VARIANTS[r.name])
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def load_history(path: str) -> list[VariantResult]:
    """The variants of a history.json as results (without trainers), e.g. to plot them again."""
    from minigraph.nn.training import EpochRecord

    with open(path) as f:
        data = json.load(f)
    results = []
    for name, run in data["variants"].items():
        h = History(step_loss=run["step_loss"], epochs=[EpochRecord(**e) for e in run["epochs"]],
                    compile_time=run["compile_time"], train_time=run.get("train_time", 0.0),
                    first_step_time=run.get("first_step_time", 0.0))
        results.append(VariantResult(name, h, None))
    return results


def replot(run_dir: str) -> dict:
    """Draw the plots of a finished run again from its history.json and config.json."""
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    return plot_results(run_dir, load_history(os.path.join(run_dir, "history.json")),
                        title=_title(config["dataset"], config))


def plot_results(out_dir: str, results: list[VariantResult], title: str = "", dpi: int = 100) -> dict:
    """loss.png, accuracy.png and curves.png (both side by side) under ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    paths = {}
    for kind, draw, size in (("loss", _plot_loss, (6, 4)), ("accuracy", _plot_accuracy, (6, 4))):
        fig, ax = plt.subplots(figsize=size)
        draw(ax, results)
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        paths[kind + "_plot"] = os.path.join(out_dir, f"{kind}.png")
        fig.savefig(paths[kind + "_plot"], dpi=dpi)
        plt.close(fig)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    _plot_loss(a1, results)
    _plot_accuracy(a2, results)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    paths["curves_plot"] = os.path.join(out_dir, "curves.png")
    fig.savefig(paths["curves_plot"], dpi=dpi)
    plt.close(fig)
    return paths
