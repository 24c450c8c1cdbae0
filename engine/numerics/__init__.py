"""The numbers: a model on its data as a function of its weights, directions, grids, evaluation at many points.

Nothing here reads or writes files; jobs (``engine.jobs``) connect these to the store.
"""
