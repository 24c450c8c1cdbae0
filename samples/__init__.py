"""Sample recipes: small, fast, deterministic training runs that make classic loss landscapes.

Each recipe (``samples.registry.RECIPES``) trains a model in seconds on a CPU and
writes self-describing checkpoints, a weight trajectory and the exact data it used,
so Landscape has something meaningful to look at without the user bringing a model.
Nothing is imported here: a recipe imports only what it uses.
"""
