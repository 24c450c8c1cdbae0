"""The app's dialogs; they gather choices and call engine/samples functions, never compute.

- :mod:`.model_dialog`: ``ModelDialog`` -> ``ModelChoice`` (model reference, kwargs, data, trust);
  relative files are looked up next to the checkpoint, then in the working directory.
- :mod:`.compute_dialog`: ``ComputeDialog`` -> ``engine.jobs.surface.SurfaceRequest``.
- :mod:`.path_dialog`: ``PathDialog`` (Compute ▸ Mode Connectivity…) -> ``engine.jobs.path.PathRequest``:
  two checkpoints, model and data prefilled as ``ModelDialog`` does, the curve and its training.
- :mod:`.train_dialog`: ``TrainSampleDialog`` trains a sample recipe with live progress and stays
  on the finished curve with "Compute its surface".
- :mod:`.export_dialogs`: ``ask_export_figure(window)`` (views or the Path tab's plots, title, size, DPI,
  PNG/SVG) and
  ``ask_export_grid(window)``; file names follow the chosen format.

File pickers open where the last file of their kind was (``AppSettings.last_folder``).
"""
