"""Running a job where a person watches: a tqdm bar on stderr, notes, and what an interruption saved.

The CLI (``landscape surface``) and the Python API (``engine.surface``) run every job
through :func:`run_with_progress`, so both say the same things the same way.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from engine.jobs.base import COMPUTING, Job


def run_with_progress(job: Job, bar_class: Callable[..., Any], *, show: bool | None = None, again: str) -> bool:
    """Prepare and run ``job`` with a progress bar; True if Ctrl-C (or SIGTERM, as the CLI maps it) stopped it.

    ``bar_class`` is tqdm's class (``tqdm.tqdm`` in a terminal, ``tqdm.auto.tqdm`` in a
    notebook); ``show=None`` lets tqdm decide (only on a terminal). After an interruption
    it says how much is saved and that ``again`` continues.
    """
    bar = None
    interrupted = False
    try:
        job.prepare()
        for message in job.messages:
            print(message, file=sys.stderr)
        for step in job.run():
            if bar is None:
                bar = bar_class(total=step.total, initial=step.done, unit=job.unit, desc=job.kind,
                                disable=None if show is None else not show, file=sys.stderr)
            if bar.total != step.total:  # an adaptive job (a spectrum) learns its total as it converges
                bar.total = step.total
            bar.set_description(job.kind if step.phase == COMPUTING else f"{job.kind} ({step.phase})", refresh=False)
            bar.update(step.done - bar.n)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    if interrupted:
        if job.has_summary:
            summary = job.summary()
            print(f"interrupted: {summary.done} of {summary.total} {job.noun} are saved in {summary.path}; "
                  f"{again} to continue", file=sys.stderr)
        else:
            print("interrupted before the result file was ready; nothing was computed", file=sys.stderr)
    return interrupted
