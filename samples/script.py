"""The shared ``if __name__ == "__main__"`` of the recipe files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from engine.errors import LandscapeError
from samples.options import Option, add_arguments
from samples.training import TrainResult


def main(name: str, description: str, options: Sequence[Option],
         train: Callable[..., TrainResult], argv: Sequence[str] | None = None) -> int:
    """Parse ``--out DIR --seed S --OPTION V ...``, train, print where the results went."""
    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and batch order (default: 0)")
    add_arguments(parser, options)
    args = vars(parser.parse_args(argv))
    out, seed = args.pop("out"), args.pop("seed")

    printed = [-1]

    def report(epoch: int, total: int, loss: float) -> None:
        # about ten lines per run, whatever the number of epochs
        if epoch == total or epoch == 0 or 10 * epoch // total > 10 * printed[0] // total:
            print(f"epoch {epoch}/{total} train_loss {loss:.4g}", flush=True)
            printed[0] = epoch

    try:
        result = train(out, seed=seed, progress=report, **args)
    except LandscapeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.describe())
    return 0
