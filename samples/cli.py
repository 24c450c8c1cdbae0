"""``landscape train RECIPE``: the samples' subcommand, added to the engine's CLI by ``landscape_cli``.

It lives here, not in the engine, because the engine never imports the samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.errors import LandscapeError
from samples.registry import RECIPES, train


def add_train(sub: Any) -> None:
    """Add the ``train`` subcommand to the engine CLI's subparsers."""
    p = sub.add_parser(
        "train",
        help="train a sample recipe: self-describing checkpoints, a trajectory, its data and loss history",
        description="Recipes: " + "; ".join(f"{name}: {recipe.description}" for name, recipe in RECIPES.items()),
    )
    p.add_argument("recipe", help=f"one of: {', '.join(RECIPES)}")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    seen: set[str] = set()
    for recipe in RECIPES.values():
        for option in recipe.options:
            if option.name in seen:
                continue
            seen.add(option.name)
            users = ", ".join(r.name for r in RECIPES.values() if any(o.name == option.name for o in r.options))
            p.add_argument("--" + option.name.replace("_", "-"), dest=option.name, type=option.type, default=None,
                           help=f"{option.help} (recipes: {users})")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    recipe = RECIPES.get(args.recipe)
    if recipe is None:
        raise LandscapeError(f"unknown recipe '{args.recipe}'; choose one of: {', '.join(RECIPES)}")
    allowed = {o.name for o in recipe.options}
    given = {o.name: getattr(args, o.name) for r in RECIPES.values() for o in r.options
             if getattr(args, o.name, None) is not None}
    wrong = sorted(set(given) - allowed)
    if wrong:
        raise LandscapeError(
            f"recipe {args.recipe} takes no --{wrong[0].replace('_', '-')}; its options: "
            + (", ".join("--" + o.replace("_", "-") for o in sorted(allowed)) or "none")
        )
    from tqdm import tqdm

    with tqdm(unit="epoch", desc=args.recipe, disable=None, file=sys.stderr) as bar:

        def progress(epoch: int, total: int, loss: float) -> None:
            bar.total = total
            bar.set_postfix_str(f"train_loss {loss:.3g}", refresh=False)
            bar.update(epoch - bar.n)

        result = train(args.recipe, Path(args.out), seed=args.seed, progress=progress, **given)
    print(result.describe())
    return 0
