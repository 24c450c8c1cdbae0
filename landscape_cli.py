"""The ``landscape`` command: the engine's subcommands, plus ``train`` when the samples are installed.

A thin composition above both packages: the engine never imports ``samples``, so
``python -m engine`` offers only the engine's own subcommands.
"""

from __future__ import annotations

from typing import Sequence

from engine import cli


def _extensions() -> list[cli.Subcommand]:
    try:
        from samples.cli import add_train
    except ImportError as exc:
        if not (exc.name or "").startswith("samples"):
            raise  # a broken dependency inside the samples, not their absence
        return []
    return [add_train]


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, extensions=_extensions())


if __name__ == "__main__":
    raise SystemExit(main())
