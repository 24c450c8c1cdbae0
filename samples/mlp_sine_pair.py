"""Recipe mlp-sine-pair: the mlp-sine model trained from seeds S and S+1 on the same data.

The two minima, in ``OUT/a`` and ``OUT/b`` (each a full mlp-sine output folder),
are the endpoints for mode connectivity: is the straight path between them a
barrier, and is there a curved path without one?
Run: ``python samples/mlp_sine_pair.py --out runs/pair``.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a file: import the samples package, not its files
    import sys
    from pathlib import Path

    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))

import time
from pathlib import Path
from typing import Any

from samples import mlp_sine
from samples.files import prepare_out, write_json
from samples.options import check_seed, resolve
from samples.training import OUTPUT_FILES, Progress, TrainResult, run

NAME = "mlp-sine-pair"
DESCRIPTION = "two mlp-sine models from seeds S and S+1 on the same data (a/ and b/), for mode connectivity"
OPTIONS = mlp_sine.OPTIONS
MEMBERS = ("a", "b")


def train(out: Path | str, seed: int = 0, progress: Progress | None = None, **options: Any) -> TrainResult:
    """Train both models; progress counts epochs over the pair (a first, then b)."""
    started = time.perf_counter()
    opts = resolve(NAME, OPTIONS, options)
    seed = check_seed(seed)
    out = prepare_out(Path(out), ("recipe.json",))
    parts: dict[str, TrainResult] = {}
    for index, member in enumerate(MEMBERS):
        job = mlp_sine.make_job(seed + index, opts)
        job.metadata.update({"pair_recipe": NAME, "pair_seed": seed, "member": member})
        part_progress = None
        if progress is not None:
            offset, total = index * job.epochs, len(MEMBERS) * job.epochs
            part_progress = lambda e, _t, loss, o=offset, n=total: progress(e + o, n, loss)  # noqa: E731
        parts[member] = run(job, out / member, part_progress)
        if parts[member].cancelled:
            break
    for member in MEMBERS:  # a cancelled pair must not look complete because of an older b/
        if member not in parts and (out / member).is_dir():
            prepare_out(out / member, OUTPUT_FILES)
    seconds = time.perf_counter() - started
    cancelled = any(part.cancelled for part in parts.values()) or len(parts) < len(MEMBERS)
    write_json(out / "recipe.json", {
        "recipe": NAME,
        "seed": seed,
        "options": opts,
        "members": {m: {"path": m, "seed": seed + i} for i, m in enumerate(MEMBERS) if m in parts},
        "cancelled": cancelled,
        "seconds": round(seconds, 3),
    })
    return TrainResult(recipe=NAME, out=out, checkpoints=[p.checkpoint for p in parts.values()], trajectory=[],
                       metrics={}, history={}, seconds=seconds, cancelled=cancelled, parts=parts)


if __name__ == "__main__":
    from samples.script import main

    raise SystemExit(main(NAME, DESCRIPTION, OPTIONS, train))
