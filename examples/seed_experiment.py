"""The seed notes' experiment from Python: the 10-layer tanh MLP with and without batch
normalization, loss and accuracy curves side by side.

    python examples/seed_experiment.py                       # digits, about a minute
    python examples/seed_experiment.py fashion-mnist 5       # Debian's dataset-fashion-mnist, 5 epochs
    python examples/seed_experiment.py mnist 5 ~/data/mnist  # the four MNIST IDX files

`minigraph train` does the same with more options; this script shows the Python API it uses.
"""
import sys

from minigraph.datasets import DatasetError, load
from minigraph.nn.experiment import ExperimentConfig, format_table, run_experiment, write_results

dataset_name = sys.argv[1] if len(sys.argv) > 1 else "digits"
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
data_dir = sys.argv[3] if len(sys.argv) > 3 else None

# the seed's configuration: (dense 784 -> BN -> tanh) x 10, dropout 0.1 then 0.5, SGD lr 0.01, batch 100
config = ExperimentConfig(dataset=dataset_name, data_dir=data_dir, epochs=epochs, layers=10, units=784,
                          activation="tanh", lr=0.01, batch_size=100, dropout=(0.1, 0.5), seed=0)
try:
    data = load(config.dataset, config.data_dir)
except DatasetError as e:
    sys.exit(str(e))

results = run_experiment(config, data)
print(format_table(results))

# epoch by epoch, the two variants side by side
print("\nepoch  " + "  ".join(f"{r.name + ' acc':>9} {r.name + ' s':>8}" for r in results))
for i in range(config.epochs):
    cells = [f"{r.history.epochs[i].test_accuracy:>9.4f} {r.history.epochs[i].wall_time:>8.1f}" for r in results]
    print(f"{i + 1:>5}  " + "  ".join(cells))

paths = write_results(f"runs/seed_experiment_{dataset_name}", config, data, results)
print("\nplots:", paths["curves_plot"])
