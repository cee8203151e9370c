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
    trainer: Trainer

    def summary(self) -> dict:
        """The final-table row."""
        h = self.history
        last = h.epochs[-1] if h.epochs else None
        return {"variant": self.name, "final_train_loss": last.train_loss if last else float("nan"),
                "test_accuracy": last.test_accuracy if last else float("nan"),
                "steps_per_second": h.steps_per_second, "compile_time": h.compile_time,
                "mode": self.trainer.mode}


def build_model(config: ExperimentConfig, variant: str, n_in: int, n_classes: int) -> MLP:
    """The MLP for one variant (same seed, so both start from the same weights where shapes agree)."""
    return MLP(n_in=n_in, n_classes=n_classes, n_layers=config.layers, units=config.units,
               activation=config.activation, batch_norm=(variant == "bn"), dropout=config.dropout, seed=config.seed)


def run_experiment(config: ExperimentConfig, dataset, progress: bool | None = None, log=print) -> list[VariantResult]:
    """Train every variant of ``config`` on ``dataset``; returns their results."""
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

        history = trainer.fit(x_train, y_train, x_test, y_test, epochs=config.epochs, batch_size=config.batch_size,
                              seed=config.seed, progress=progress, desc=variant, on_epoch=report)
        results.append(VariantResult(variant, history, trainer))
    return results


def format_table(results: list[VariantResult]) -> str:
    """The final table: one row per variant."""
    head = f"{'variant':<8} {'final train loss':>16} {'test accuracy':>13} {'steps/s':>9} {'compile s':>9}  mode"
    rows = [head, "-" * len(head)]
    for r in results:
        s = r.summary()
        rows.append(f"{s['variant']:<8} {s['final_train_loss']:>16.4f} {s['test_accuracy']:>13.4f} "
                    f"{s['steps_per_second']:>9.1f} {s['compile_time']:>9.2f}  {s['mode']}")
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
    paths.update(plot_results(out_dir, results, title=f"{dataset.name}: {config.layers} x {config.units} "
                                                        f"{config.activation}, lr {config.lr}"))
    return paths


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
    ax.legend(fontsize=8)


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
    ax.legend(fontsize=8)


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
