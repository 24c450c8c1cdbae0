"""Deterministic built-in data sets, also usable as ``--data sample:NAME``.

The recipes train on exactly these sets (and store them as train.npz/test.npz),
so a landscape computed later with ``sample:NAME`` sees the same data.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

import torch

from engine.errors import LandscapeError

SINE_DIM = 20
SINE_TRAIN_SEED = 0
SINE_TEST_SEED = 1
SINE_TEST_SIZE = 1000
DIGITS_TEST_SIZE = 360  # of 1797: 1437 train / 360 test, the usual 80/20 split

SKLEARN_SOURCE = "sklearn.datasets.load_digits"
SYNTHETIC_SOURCE = "synthetic-digits"


class Data(tuple):
    """An ``(x, y)`` pair that also says where it came from (``.source``).

    Unpacks like a plain tuple: ``x, y = digits()``.
    """

    source: str

    def __new__(cls, x: torch.Tensor, y: torch.Tensor, source: str) -> "Data":
        obj = super().__new__(cls, (x, y))
        obj.source = source
        return obj

    @property
    def x(self) -> torch.Tensor:
        return self[0]

    @property
    def y(self) -> torch.Tensor:
        return self[1]


def sine(n: int = 100, seed: int = 0, noise: float = 0.1) -> Data:
    """Regression in 20-D: y = sin(sum x[:5]) + 0.5 cos(sum x[5:10]) + noise.

    Only 10 of the 20 inputs matter, and 100 samples are few for 20-D, so wide
    MLPs can interpolate the training set while the test loss tells them apart.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise LandscapeError(f"sine data needs a positive number of samples, got {n!r}")
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, SINE_DIM, generator=generator)
    clean = torch.sin(x[:, :5].sum(dim=1)) + 0.5 * torch.cos(x[:, 5:10].sum(dim=1))
    y = clean + float(noise) * torch.randn(n, generator=generator)
    return Data(x.float(), y.unsqueeze(1).float(), f"sine(n={n}, seed={seed}, noise={noise})")


def digits(split: str = "train", seed: int = 0, source: str = "auto") -> Data:
    """8x8 digit images (n, 1, 8, 8) in [0, 1] with int64 labels, split 1437/360 by ``seed``.

    ``source="auto"`` uses scikit-learn's bundled digits (no download) and falls back
    to generated glyphs of the same shape when scikit-learn is not installed;
    ``.source`` on the result says which one was used.
    """
    if split not in ("train", "test"):
        raise LandscapeError(f"digits split must be 'train' or 'test', got {split!r}")
    if source == "auto":
        source = SKLEARN_SOURCE if _have_sklearn() else SYNTHETIC_SOURCE
    if source == SKLEARN_SOURCE:
        x, y = _sklearn_digits()
    elif source == SYNTHETIC_SOURCE:
        x, y = _synthetic_digits()
    else:
        raise LandscapeError(f"digits source must be 'auto', '{SKLEARN_SOURCE}' or '{SYNTHETIC_SOURCE}', got {source!r}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(int(seed)))
    n_train = len(y) - DIGITS_TEST_SIZE
    index = order[:n_train] if split == "train" else order[n_train:]
    return Data(x[index].clone(), y[index].clone(), source)


def _have_sklearn() -> bool:
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    return x, y


# 0-9 drawn on 8x8; the fallback renders them shifted, faded and noisy.
_GLYPHS = (
    ("..####..", ".#....#.", ".#...##.", ".#..#.#.", ".#.#..#.", ".##...#.", ".#....#.", "..####.."),
    ("...##...", "..###...", ".#.##...", "...##...", "...##...", "...##...", "...##...", ".######."),
    ("..####..", ".#....#.", "......#.", ".....#..", "....#...", "...#....", "..#.....", ".######."),
    ("..####..", ".#....#.", "......#.", "...###..", "......#.", "......#.", ".#....#.", "..####.."),
    (".....#..", "....##..", "...#.#..", "..#..#..", ".#...#..", ".######.", ".....#..", ".....#.."),
    (".######.", ".#......", ".#......", ".#####..", "......#.", "......#.", ".#....#.", "..####.."),
    ("..####..", ".#......", ".#......", ".#####..", ".#....#.", ".#....#.", ".#....#.", "..####.."),
    (".######.", "......#.", ".....#..", ".....#..", "....#...", "....#...", "...#....", "...#...."),
    ("..####..", ".#....#.", ".#....#.", "..####..", ".#....#.", ".#....#.", ".#....#.", "..####.."),
    ("..####..", ".#....#.", ".#....#.", ".#....#.", "..#####.", "......#.", "......#.", "..####.."),
)


@lru_cache(maxsize=1)
def _synthetic_digits(n: int = 1797, seed: int = 1797) -> tuple[torch.Tensor, torch.Tensor]:
    """Glyphs shifted by up to one pixel, with random stroke strength and pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    glyphs = torch.tensor([[[c == "#" for c in row] for row in g] for g in _GLYPHS], dtype=torch.float32)
    y = torch.arange(n) % 10
    y = y[torch.randperm(n, generator=generator)]
    padded = torch.nn.functional.pad(glyphs[y], (1, 1, 1, 1))  # (n, 10, 10)
    shifts = torch.randint(0, 3, (n, 2), generator=generator)
    rows = shifts[:, 0, None] + torch.arange(8)  # (n, 8)
    cols = shifts[:, 1, None] + torch.arange(8)
    x = padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    x = x * (0.5 + 0.5 * torch.rand(n, 1, 1, generator=generator))
    x = x + 0.2 * torch.randn(n, 8, 8, generator=generator)
    return x.clamp(0.0, 1.0).unsqueeze(1), y.to(torch.int64)


DATASETS: dict[str, Callable[[], Data]] = {
    "sine": lambda: sine(100, seed=SINE_TRAIN_SEED),
    "sine-test": lambda: sine(SINE_TEST_SIZE, seed=SINE_TEST_SEED),
    "sine-2000": lambda: sine(2000, seed=SINE_TRAIN_SEED),
    "digits": lambda: digits("train"),
    "digits-test": lambda: digits("test"),
}

_SINE_N = re.compile(r"sine-(\d+)")


def sine_train_name(n: int) -> str:
    """The ``sample:`` name of the sine training set with n samples."""
    return "sine" if n == 100 else f"sine-{n}"


def load_dataset(name: str) -> Data:
    """Load a built-in data set by name; also accepts ``sine-N`` for any sample count N."""
    name = name.removeprefix("sample:")
    if name in DATASETS:
        return DATASETS[name]()
    match = _SINE_N.fullmatch(name)
    if match and int(match.group(1)) > 0:
        return sine(int(match.group(1)), seed=SINE_TRAIN_SEED)
    raise LandscapeError(f"unknown sample data set '{name}'; choose one of {', '.join(DATASETS)} (or sine-N)")
