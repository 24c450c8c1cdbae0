"""First launch: train the mlp-sine sample (or reuse the cached one) and compute its surface live."""

from __future__ import annotations

from engine.io.store import read_done
from landscape_gui.first_run import FirstRun, plan
from landscape_gui.workers import CallbackWorker
from samples import registry

TRAINING_TEXT = "Training the sample model… then computing its surface"
COMPUTING_TEXT = "Computing the sample's loss surface…"
PROGRESS_SECONDS = 0.1  # the map's bar needs no more; each report costs the training thread the GIL


def start_sample(window, run: FirstRun | None = None) -> FirstRun:
    """Show the sample in ``window``: open it if done, else train and/or compute it in the background."""
    run = run or plan()
    if not run.needs_training():
        _compute_or_open(window, run)
        return run

    def work(report):
        return registry.train(run.recipe, run.folder, seed=run.seed, progress=report, **run.options)

    worker = CallbackWorker(work, parent=window, min_interval=PROGRESS_SECONDS)

    def progressed(args) -> None:
        epoch, total, loss = args
        window.task_progressed(epoch, total, f"train loss {loss:.3g}")

    def trained(result) -> None:
        if result is None or result.cancelled:
            window.end_task("sample training cancelled; File ▸ Open Checkpoint or Samples ▸ Train Sample to go on")
            return
        window.end_task(f"trained {run.recipe} in {result.seconds:.1f} s: computing its loss surface",
                        next_step=COMPUTING_TEXT)
        _compute_or_open(window, run)

    def failed(message: str, details: str) -> None:
        window.end_task()
        window.show_error(message, details)

    worker.progress.connect(progressed)
    worker.returned.connect(trained)
    worker.errored.connect(failed)
    worker.finished.connect(worker.deleteLater)  # QThread.finished: only once run() has returned
    window.begin_task(worker, TRAINING_TEXT)
    window.statusBar().showMessage(f"first launch: training the {run.recipe} sample into {run.folder}", 5000)
    worker.start()
    return run


def _compute_or_open(window, run: FirstRun) -> None:
    if run.surface.is_file():
        try:
            complete = bool(read_done(run.surface).all())  # the mask only: open_grid reads the values
        except Exception:  # a corrupt cache file: compute it again
            complete = False
            run.surface.unlink(missing_ok=True)
        if complete:
            window.open_grid(run.surface)
            return
    window.say_in_map(COMPUTING_TEXT)  # until its first points are drawn
    window.submit(run.surface_request())  # a partial file with the same settings is resumed
