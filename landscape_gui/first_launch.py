"""First launch: train the mlp-sine sample (or reuse the cached one) and compute its surface live."""

from __future__ import annotations

from engine.io.store import read_surface
from landscape_gui.workers import CallbackWorker
from samples import registry
from landscape_gui.first_run import FirstRun, plan


def start_sample(window, run: FirstRun | None = None) -> FirstRun:
    """Show the sample in ``window``: open it if done, else train and/or compute it in the background."""
    run = run or plan()
    if not run.needs_training():
        _compute_or_open(window, run)
        return run
    bar = window.statusBar()
    window.progress_bar.setVisible(True)
    window.progress_bar.setFormat("training the mlp-sine sample: %v/%m epochs")
    window.cancel_button.setVisible(True)

    def work(report):
        return registry.train(run.recipe, run.folder, seed=run.seed, progress=report, **run.options)

    worker = CallbackWorker(work, parent=window)

    def progressed(args) -> None:
        epoch, total, loss = args
        window.progress_bar.setRange(0, total)
        window.progress_bar.setValue(epoch)
        window.eta_label.setText(f"train loss {loss:.3g}")

    def trained(result) -> None:
        window.sample_pending = False
        window.cancel_button.clicked.disconnect(cancel_connection)
        if result is None or result.cancelled:
            window._show_progress(False)
            bar.showMessage("sample training cancelled; File ▸ Open Checkpoint or Samples ▸ Train Sample to go on",
                            10000)
            return
        bar.showMessage(f"trained {run.recipe} in {result.seconds:.1f} s: computing its loss surface", 5000)
        _compute_or_open(window, run)

    def failed(message: str, details: str) -> None:
        window.sample_pending = False
        window._show_progress(False)
        window.show_error(message, details)

    worker.progress.connect(progressed)
    worker.returned.connect(trained)
    worker.errored.connect(failed)
    worker.finished.connect(worker.deleteLater)  # QThread.finished: only once run() has returned
    cancel_connection = window.cancel_button.clicked.connect(worker.cancel)
    window.sample_worker = worker  # kept for closing: the window cancels it
    window.sample_pending = True  # until the result is handled (a job is queued, or it failed)
    bar.showMessage(f"first launch: training the {run.recipe} sample into {run.folder}", 5000)
    worker.start()
    return run


def _compute_or_open(window, run: FirstRun) -> None:
    if run.surface.is_file():
        try:
            complete = bool(read_surface(run.surface).done.all())
        except Exception:  # a corrupt cache file: compute it again
            complete = False
            run.surface.unlink(missing_ok=True)
        if complete:
            window.open_grid(run.surface)
            return
    window.submit(run.surface_request())  # a partial file with the same settings is resumed
