"""The training loop: compile a train function (optimizer and running-average updates) and an
inference function (population statistics, no dropout), iterate over shuffled mini-batches
with a progress bar, and record a history."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

import minigraph.tensor as T
from minigraph.compile.function import function
from minigraph.nn.optimizers import OPTIMIZERS


@dataclass
class EpochRecord:
    """What one epoch measured."""

    epoch: int
    steps: int
    train_loss: float  # mean of the epoch's mini-batch losses (training mode: dropout on)
    test_loss: float  # mean negative log likelihood in inference mode
    test_accuracy: float
    wall_time: float  # seconds spent in this epoch's training steps and evaluation


@dataclass
class History:
    """Per-step losses and per-epoch records of one training run."""

    step_loss: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    compile_time: float = 0.0
    train_time: float = 0.0  # seconds in training steps after the first (no evaluation)
    first_step_time: float = 0.0  # the first step, apart: it includes the numba backend's JIT compile
    interrupted: bool = False  # stopped early by Ctrl-C (a checkpoint lets it resume)

    @property
    def steps(self) -> int:
        """Training steps taken."""
        return len(self.step_loss)

    @property
    def steps_per_second(self) -> float:
        """Training throughput (the steps after the first over the time spent in them)."""
        return (self.steps - 1) / self.train_time if self.steps > 1 and self.train_time > 0 else float("nan")

    def column(self, key: str) -> list:
        """One per-epoch quantity as a list, e.g. ``history.column("test_accuracy")``."""
        return [getattr(e, key) for e in self.epochs]

    def to_dict(self) -> dict:
        """A JSON-ready dictionary."""
        return {"step_loss": [float(v) for v in self.step_loss], "epochs": [asdict(e) for e in self.epochs],
                "compile_time": self.compile_time, "train_time": self.train_time,
                "first_step_time": self.first_step_time, "steps_per_second": self.steps_per_second, "interrupted": self.interrupted}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """The history that ``to_dict`` wrote (floats round-trip exactly through JSON)."""
        return cls(step_loss=list(d["step_loss"]), epochs=[EpochRecord(**e) for e in d["epochs"]],
                   compile_time=d.get("compile_time", 0.0), train_time=d.get("train_time", 0.0),
                   first_step_time=d.get("first_step_time", 0.0))


class StopOnInterrupt:
    """While active, Ctrl-C (SIGINT) asks the training loop to stop after the current step
    instead of interrupting it (a step cut in half would leave some parameters updated and
    others not); a second Ctrl-C interrupts at once.  Only the main thread can take signals."""

    def __init__(self):
        self.requested = False
        self._old = None
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            self._old = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        """Put the previous SIGINT handler back."""
        if self._installed:
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.SIG_DFL)
            self._installed = False


def progress_enabled(stream=None) -> bool:
    """Progress bars only on an interactive terminal, never under CI."""
    stream = stream or sys.stderr
    if os.environ.get("CI") or os.environ.get("MINIGRAPH_NO_PROGRESS"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None, drop_last: bool = True):
    """Index arrays of (shuffled when ``rng``) mini-batches over ``n`` examples."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


class Trainer:
    """Compiles the train and inference functions of ``model`` (an object with ``params``,
    ``updates`` and ``nll(x, y, training)``, such as :class:`minigraph.nn.MLP`)."""

    def __init__(self, model, lr: float = 0.01, optimizer: str = "sgd", mode: str | None = None, **opt_kwargs):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"Trainer: unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        self.model = model
        x, y = T.matrix("x"), T.ivector("y")
        start = time.perf_counter()
        cost = model.nll(x, y, training=True).mean()
        updates = OPTIMIZERS[optimizer](cost, model.params, lr=lr, **opt_kwargs) + list(model.updates)
        self.train_step = function([x, y], cost, updates=updates, mode=mode, name="train_step")
        nll = model.nll(x, y, training=False)
        logits = model.logits(x, training=False)
        self.evaluate_batch = function([x, y], [nll, T.argmax(logits, axis=1)], mode=mode, name="evaluate")
        self.predict_batch = function([x], T.argmax(logits, axis=1), mode=mode, name="predict")
        self.compile_time = time.perf_counter() - start
        self.mode = self.train_step.mode

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Predicted classes in inference mode (the result does not depend on ``batch_size``)."""
        return np.concatenate([self.predict_batch(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
        """(mean negative log likelihood, accuracy) in inference mode."""
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            nll, pred = self.evaluate_batch(x[i:i + batch_size], y[i:i + batch_size])
            total += float(np.sum(nll, dtype=np.float64))
            correct += int(np.sum(pred == y[i:i + batch_size]))
        return total / len(x), correct / len(x)

    def fit(self, x_train, y_train, x_test, y_test, epochs: int = 5, batch_size: int = 100, seed: int = 0,
            max_steps: int | None = None, progress: bool | None = None, desc: str = "train",
            history: History | None = None, on_epoch=None, checkpoint: str | None = None,
            resume: bool = False) -> History:
        """Train for ``epochs`` passes over shuffled mini-batches (or until ``max_steps``),
        evaluating on the test set after each epoch; returns the history.

        ``checkpoint``: a file written after every epoch (and when Ctrl-C stops training after
        the current step) with every shared variable of the train step and where the loop is;
        with ``resume`` an existing one is loaded first, and the run continues exactly as if it
        had not stopped (same batches, dropout masks and parameters, bit for bit)."""
        from tqdm.auto import tqdm

        x_train = np.asarray(x_train, dtype=self.model_dtype)
        x_test = np.asarray(x_test, dtype=self.model_dtype)
        y_train = np.asarray(y_train, dtype=np.int32)
        y_test = np.asarray(y_test, dtype=np.int32)
        if batch_size > len(x_train):
            raise ValueError(f"fit: batch_size {batch_size} exceeds the {len(x_train)} training examples")
        history = history or History(compile_time=self.compile_time)
        rng = np.random.default_rng(seed)
        first_epoch, skip = 1, 0
        if resume and checkpoint is not None and os.path.exists(checkpoint):
            first_epoch, skip, shuffle_state, saved = self.load_checkpoint(checkpoint)
            rng.bit_generator.state = shuffle_state
            history.step_loss, history.epochs = saved.step_loss, saved.epochs
            history.train_time, history.first_step_time = saved.train_time, saved.first_step_time
        progress = progress_enabled() if progress is None else progress
        steps_per_epoch = len(x_train) // batch_size
        total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
        bar = tqdm(total=total, initial=min(history.steps, total), desc=desc, disable=not progress, leave=True,
                   dynamic_ncols=True)
        stop = StopOnInterrupt()
        try:
            for epoch in range(first_epoch, epochs + 1):
                start = time.perf_counter()
                shuffle_state = rng.bit_generator.state  # this epoch's shuffle starts here
                # resuming inside an epoch: its first ``skip`` steps are done (their losses too)
                losses = history.step_loss[len(history.step_loss) - skip:] if skip else []
                for k, idx in enumerate(minibatches(len(x_train), batch_size, rng)):
                    if k < skip:
                        continue
                    if stop.requested or (max_steps is not None and history.steps >= max_steps):
                        break
                    t0 = time.perf_counter()
                    loss = float(self.train_step(x_train[idx], y_train[idx]))
                    if history.steps == 0:
                        history.first_step_time = time.perf_counter() - t0
                    else:
                        history.train_time += time.perf_counter() - t0
                    history.step_loss.append(loss)
                    losses.append(loss)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", refresh=False)
                skip = 0
                if stop.requested:
                    history.interrupted = True
                    if checkpoint is not None:
                        self.save_checkpoint(checkpoint, history, epoch, len(losses), shuffle_state)
                    break
                if not losses:
                    break
                test_loss, test_acc = self.evaluate(x_test, y_test)
                record = EpochRecord(epoch, len(losses), float(np.mean(losses)), test_loss, test_acc,
                                     time.perf_counter() - start)
                history.epochs.append(record)
                bar.set_postfix(epoch=epoch, loss=f"{record.train_loss:.4f}", test_acc=f"{test_acc:.3f}")
                if checkpoint is not None:
                    self.save_checkpoint(checkpoint, history, epoch + 1, 0, rng.bit_generator.state)
                if on_epoch is not None:
                    on_epoch(record)
        finally:
            stop.restore()
            bar.close()
        return history

    def state_variables(self) -> list:
        """Every shared variable the train step reads or updates: parameters, running
        statistics, optimizer slots and dropout generators (what a checkpoint holds)."""
        f = self.train_step
        return list(f.fgraph.inputs[len(f.inputs):])

    def save_checkpoint(self, path: str, history: History, epoch: int, steps_done: int, shuffle_state) -> None:
        """Write the training state to ``path`` (atomically): the loop resumes at step
        ``steps_done`` of ``epoch``, whose shuffle starts from ``shuffle_state``."""
        from minigraph.checkpoint import save

        save(path, self.state_variables(), metadata={"epoch": epoch, "steps_done": steps_done,
                                                    "shuffle_rng": shuffle_state, "history": history.to_dict()})

    def load_checkpoint(self, path: str) -> tuple:
        """Load the training state from ``path``; (epoch, steps done in it, shuffle state, history)."""
        from minigraph.checkpoint import load

        meta = load(path, self.state_variables())
        return meta["epoch"], meta["steps_done"], meta["shuffle_rng"], History.from_dict(meta["history"])

    @property
    def model_dtype(self) -> str:
        """The float dtype the compiled functions take (config.floatX when they were built)."""
        return self.train_step.inputs[0].dtype


def fit(model, dataset, epochs: int = 5, batch_size: int = 100, lr: float = 0.01, optimizer: str = "sgd",
        mode: str | None = None, seed: int = 0, **kwargs) -> tuple[Trainer, History]:
    """Compile ``model`` and train it on a :class:`minigraph.datasets.Dataset`; returns (trainer, history)."""
    trainer = Trainer(model, lr=lr, optimizer=optimizer, mode=mode)
    history = trainer.fit(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, epochs=epochs,
                          batch_size=batch_size, seed=seed, **kwargs)
    return trainer, history
