"""The app's dialogs; they gather choices and call engine/samples functions, never compute.

- :mod:`.model_dialog`: ``ModelDialog`` -> ``ModelChoice`` (model reference, kwargs, data, trust).
- :mod:`.compute_dialog`: ``ComputeDialog`` -> ``engine.jobs.surface.SurfaceRequest``.
- :mod:`.train_dialog`: ``TrainSampleDialog`` trains a sample recipe with live progress.
"""
