"""Recipe digits-cnn: a small BatchNorm CNN classifying scikit-learn's 8x8 digits.

A real (if tiny) image classifier with BatchNorm, the layer that makes weight-space
directions scale-sensitive; it reaches >90% test accuracy in seconds. Without
scikit-learn it trains on generated 8x8 glyphs instead (recorded as data_source).
Run: ``python samples/digits_cnn.py --out runs/digits``.
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

NAME = "digits-cnn"
DESCRIPTION = "small BatchNorm CNN on 8x8 digits (scikit-learn), cross-entropy, >90% test accuracy"
OPTIONS = (
    Option("channels", int, 16, "channels of both conv layers", minimum=1),
    Option("epochs", int, 10, "training epochs", minimum=1),
    Option("lr", float, 3e-3, "learning rate", minimum=0.0, strict=True),
    Option("batch_size", int, 64, "minibatch size; 0 trains full batch", minimum=0),
    Option("optimizer", str, "adam", "optimizer (sgd uses momentum 0.9)", choices=("adam", "sgd")),
    Option("snapshots", int, 11, "trajectory checkpoints including the first and last epoch", minimum=2),
)


def make_job(seed: int, opts: dict[str, Any]) -> Job:
    """The digits-cnn run for resolved options."""
    train_data = datasets.DATASETS["digits"]()
    return Job(
        recipe=NAME,
        seed=seed,
        options=opts,
        model_factory="engine.builtin.models:small_cnn",
        model_kwargs={"channels": opts["channels"], "num_classes": 10},
        task="classification",
        train_data=train_data,
        test_data=datasets.DATASETS["digits-test"](),
        epochs=opts["epochs"],
        lr=opts["lr"],
        batch_size=opts["batch_size"],
        optimizer=opts["optimizer"],
        snapshots=opts["snapshots"],
        metadata={"train_data": "sample:digits", "test_data": "sample:digits-test", "data_source": train_data.source},
    )


def train(out: Path | str, seed: int = 0, progress: Progress | None = None, **options: Any) -> TrainResult:
    """Train the CNN and write ``out`` (layout in ``samples.training``)."""
    opts = resolve(NAME, OPTIONS, options)
    return run(make_job(check_seed(seed), opts), Path(out), progress)


if __name__ == "__main__":
    from samples.script import main

    raise SystemExit(main(NAME, DESCRIPTION, OPTIONS, train))
