"""Recipe mlp-sine: a ReLU MLP fit to 100 noisy samples of a 20-D sine function.

Sweep ``--width`` (10, 50, 200, 500) to compare models from a few hundred to a
quarter million parameters on the same data: all of them can drive the training
loss towards zero, and the landscape shows how differently they do it.
Run: ``python samples/mlp_sine.py --out runs/w50 --width 50``.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a file: import the samples package, not its files
    import sys
    from pathlib import Path

    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))

from pathlib import Path
from typing import Any

from engine.builtin import datasets
from samples.options import Option, check_seed, resolve
from samples.training import Job, Progress, TrainResult, run

NAME = "mlp-sine"
DESCRIPTION = "ReLU MLP regression on 100 samples of a 20-D sine; sweep --width 10/50/200/500"
OPTIONS = (
    Option("width", int, 50, "hidden units per layer", minimum=1),
    Option("depth", int, 2, "number of hidden layers", minimum=1),
    Option("epochs", int, 1000, "training epochs (full-batch steps by default)", minimum=1),
    Option("lr", float, 1e-3, "Adam learning rate", minimum=0.0, strict=True),
    Option("n_train", int, 100, "training samples (the test set is always sample:sine-test)", minimum=1),
    Option("batch_size", int, 0, "minibatch size; 0 trains full batch", minimum=0),
    Option("snapshots", int, 11, "trajectory checkpoints including the first and last epoch", minimum=2),
)


def make_job(seed: int, opts: dict[str, Any]) -> Job:
    """The mlp-sine run for resolved options; the pair recipe reuses it."""
    n_train = opts["n_train"]
    train_name = datasets.sine_train_name(n_train)
    metadata: dict[str, Any] = {"width": opts["width"], "test_data": "sample:sine-test"}
    if train_name in datasets.DATASETS:  # other sizes exist only as train.npz, the engine cannot name them
        metadata["train_data"] = f"sample:{train_name}"
    return Job(
        recipe=NAME,
        seed=seed,
        options=opts,
        model_factory="engine.builtin.models:mlp",
        model_kwargs={"in_dim": datasets.SINE_DIM, "width": opts["width"], "depth": opts["depth"], "out_dim": 1},
        task="regression",
        train_data=datasets.load_dataset(train_name),
        test_data=datasets.DATASETS["sine-test"](),
        epochs=opts["epochs"],
        lr=opts["lr"],
        batch_size=opts["batch_size"],
        snapshots=opts["snapshots"],
        metadata=metadata,
    )


def train(out: Path | str, seed: int = 0, progress: Progress | None = None, **options: Any) -> TrainResult:
    """Train one MLP and write ``out`` (layout in ``samples.training``)."""
    opts = resolve(NAME, OPTIONS, options)
    return run(make_job(check_seed(seed), opts), Path(out), progress)


if __name__ == "__main__":
    from samples.script import main

    raise SystemExit(main(NAME, DESCRIPTION, OPTIONS, train))
