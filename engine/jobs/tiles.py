"""A grid's work, split three ways: the plan, a pure tile function, and the single writer.

* :class:`GridPlan` knows which points a file still misses and hands them out,
  coarse to fine, in tiles of whatever size the scheduler asks for.
* :class:`TileFunction` turns a tile's plane coordinates into metric values. It is
  rebuilt from a :class:`SurfaceTask` (a problem spec, the file holding the
  direction tensors, their digests and the evaluation strategy), so it can run in
  this process, in another one, or on a cluster worker, with the same bits.
* The job's :class:`engine.io.store.GridWriter` is the only thing that writes.

Tile sizes follow the work (a tile aims at a fraction of a second, so cancel and
progress stay prompt), while writes follow the flush interval: they are separate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from engine.errors import LandscapeError
from engine.io.store import read_directions, tensor_group_digests
from engine.jobs.spec import ProblemSpec, load_problem
from engine.numerics.evaluate import PointEvaluator
from engine.numerics.grid import iter_coarse_to_fine
from engine.numerics.problem import Problem


class GridPlan:
    """The points of an (ny, nx) grid that are not done yet, coarse to fine, as flat indices j * nx + i."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None, done: np.ndarray,
                 line: tuple[float, float, float, float] | None = None) -> None:
        self.x, self.y, self.line = x, y, line
        self.remaining = int(done.size - np.count_nonzero(done))
        self._order: Iterator[np.ndarray] = iter_coarse_to_fine(len(x), 1 if y is None else len(y), done)
        self._buffer = np.zeros(0, dtype=np.int64)

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` (or fewer, at the end) points to compute."""
        while len(self._buffer) < count:
            chunk = next(self._order, None)
            if chunk is None:
                break
            self._buffer = np.concatenate([self._buffer, chunk])
        tile, self._buffer = self._buffer[:count], self._buffer[count:]
        self.remaining -= len(tile)
        return tile

    def coordinates(self, indices: np.ndarray) -> np.ndarray:
        """Plane coordinates (k, axes) of flat indices; along a line, its x is the fraction t."""
        nx = len(self.x)
        if self.line is not None:
            x0, y0, x1, y1 = self.line
            t = self.x[indices]
            return np.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0)], axis=1)
        if self.y is None:
            return self.x[indices % nx][:, None]
        return np.stack([self.x[indices % nx], self.y[indices // nx]], axis=1)


@dataclass(frozen=True)
class SurfaceTask:
    """What a tile function is rebuilt from: plain data, so it can cross processes."""

    problem: ProblemSpec  # resolved, with the batch size the file records
    directions_file: str  # a Landscape file holding the direction tensors (the result file itself)
    directions_sha256: tuple[str, ...]  # digest of each direction used, x first
    strategy: str  # the evaluation strategy the file records ("auto" only before it decided)


class TileFunction:
    """Metric values (``train_loss``, ``train_acc``) at plane coordinates: origin + sum_k c_k d_k."""

    def __init__(self, problem: Problem, directions: Sequence[Mapping[str, torch.Tensor]], strategy: str) -> None:
        self.problem = problem
        self.evaluator = PointEvaluator(problem, problem.origin(), list(directions), strategy=strategy)

    @classmethod
    def from_task(cls, task: SurfaceTask) -> "TileFunction":
        """Load the problem and the directions a task names, checking that they are the ones it used."""
        loaded = load_problem(task.problem)
        directions = read_directions(task.directions_file)[:len(task.directions_sha256)]  # checked against digests
        recorded = tensor_group_digests(task.directions_file, "directions")
        if tuple(recorded[axis] for axis in ("x", "y")[:len(directions)]) != task.directions_sha256:
            raise LandscapeError(f"the directions in {task.directions_file} are not the ones this task was made with")
        return cls(loaded.problem, directions, task.strategy)

    @property
    def strategy(self) -> str:
        return self.evaluator.strategy

    @property
    def metrics(self) -> list[str]:
        return ["train_loss", "train_acc"] if self.problem.classification else ["train_loss"]

    def __call__(self, coords: np.ndarray) -> dict[str, np.ndarray]:
        loss, acc = self.evaluator(np.asarray(coords, dtype=np.float64))
        values = {"train_loss": np.asarray(loss, dtype=np.float64)}
        if acc is not None:
            values["train_acc"] = np.asarray(acc, dtype=np.float64)
        return values
