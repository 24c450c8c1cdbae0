"""Names the engine writes into files and must always resolve: built-in data sets and model factories.

``sample:NAME`` data references and the factories named inside self-describing
checkpoints (``engine.builtin.models:mlp``) are part of the file formats, so they
live in the engine, not in the ``samples`` recipes that use them.
"""
