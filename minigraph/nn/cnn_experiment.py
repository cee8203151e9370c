"""``minigraph train --model cnn``: the seed's Keras CNN on images, then its folded inference.

Digits are 8x8 images, MNIST and Fashion-MNIST 28x28 (the loaders give flattened rows; the
model reshapes them).  After training, the inference function is compiled twice (batch norm
as trained, and folded into the neighbouring layers) and both are timed and scored.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

#: what the CNN uses for flags left at the MLP's defaults (the MLP's plain SGD at 0.01 with
#: batches of 100 takes many more epochs to train the CNN)
CNN_DEFAULTS = {"lr": 0.05, "optimizer": "momentum", "batch_size": 32, "epochs": 2}

#: the QUICK variant: a subset of the data
QUICK = {"max_train": 1000, "max_test": 500, "epochs": 2}

IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28)}


def cnn_settings(args, mlp_defaults) -> dict:
    """The CNN run's settings from parsed ``train`` arguments: a flag given with a value other
    than the MLP default wins, else the CNN default."""
    out = {}
    for key, value in CNN_DEFAULTS.items():
        given = getattr(args, key, None)
        out[key] = value if given is None or given == getattr(mlp_defaults, key, None) else given
    if getattr(args, "quick", False):
        out.update(QUICK)
    return out


def time_call(f, x, repeats: int = 5) -> float:
    """Median seconds of ``f(x)`` (after one warm-up call)."""
    f(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_cnn(args) -> int:
    """Train the seed CNN as the ``train`` arguments say; print epochs and the folding summary."""
    from minigraph.datasets import DatasetError, load
    from minigraph.nn.experiment import ExperimentConfig
    from minigraph.nn.sequential import seed_cnn

    settings = cnn_settings(args, ExperimentConfig())
    try:
        data = load(args.dataset, args.data_dir, seed=args.seed)
    except DatasetError as e:
        print(f"minigraph train: cannot load the {args.dataset} dataset. {e}", file=sys.stderr)
        return 2
    n_train, n_test = settings.get("max_train"), settings.get("max_test")
    x_train, y_train = data.x_train[:n_train], data.y_train[:n_train]
    x_test, y_test = data.x_test[:n_test], data.y_test[:n_test]
    shape = IMAGE_SHAPES.get(args.dataset) or (1,) + tuple(data.info.get("image_shape", ()))
    model = seed_cnn(input_shape=shape, n_classes=data.n_classes, seed=args.seed)
    print(f"{data!r}\n{model!r} on {shape} images; {settings['optimizer']} lr {settings['lr']}, "
          f"batch {settings['batch_size']}, {settings['epochs']} epochs, seed {args.seed}")
    print(model.summary())
    trainer = model.compile(lr=settings["lr"], optimizer=settings["optimizer"], mode=args.mode)
    print(f"compiled in {trainer.compile_time:.2f} s (mode {trainer.mode})")

    def report(rec):
        print(f"epoch {rec.epoch:3d}  train loss {rec.train_loss:.4f}  test loss {rec.test_loss:.4f}  "
              f"test acc {rec.test_accuracy:.4f}  {rec.wall_time:.1f} s")

    progress = False if getattr(args, "no_progress", False) else None
    history = model.fit(x_train, y_train, x_test, y_test, epochs=settings["epochs"],
                        batch_size=settings["batch_size"], seed=args.seed, progress=progress, on_epoch=report)
    plain = model.compile_inference(fold_batch_norm=False, mode=args.mode, output="classes")
    folded = model.compile_inference(mode=args.mode, output="classes")
    folds = {k: v for k, v in folded.rewrite_log.counts().items() if k.startswith("fold_batch_norm")}
    acc_plain = float(np.mean(plain(x_test) == y_test))
    acc_folded = float(np.mean(folded(x_test) == y_test))
    batch = x_test[:100]
    t_plain, t_folded = time_call(plain, batch), time_call(folded, batch)
    print(f"\ninference, batch norm as trained: accuracy {acc_plain:.4f}, {t_plain * 1e3:.2f} ms per batch of "
          f"{len(batch)}")
    print(f"inference, batch norm folded ({', '.join(f'{k} x{v}' for k, v in folds.items()) or 'nothing folded'}): "
          f"accuracy {acc_folded:.4f}, {t_folded * 1e3:.2f} ms ({t_plain / t_folded:.2f}x)")
    out = getattr(args, "out", None) or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + "-cnn")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump({"model": repr(model), "dataset": data.name, "settings": settings, "history": history.to_dict(),
                   "inference": {"accuracy": acc_plain, "accuracy_folded": acc_folded, "seconds": t_plain,
                                 "seconds_folded": t_folded, "folds": folds}}, f, indent=1)
    print(f"wrote history.json under {out}")
    return 0


__all__ = ["run_cnn", "cnn_settings", "CNN_DEFAULTS"]
