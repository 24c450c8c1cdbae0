"""Resolve ``module.path:callable`` and ``path/to/file.py:callable`` references.

Models and data sets are named this way on the command line and inside
self-describing checkpoints, so that a checkpoint never has to carry code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from engine.errors import LandscapeError

# Factories named *inside a checkpoint* are imported without asking only from these
# packages; any other reference found in a file must be confirmed by the user
# (passing it explicitly with --model), because importing it runs its code.
# Trusting a whole package is not enough: a checkpoint could name a trusted *function*
# that runs code given the right kwargs (engine.io.references:resolve imports any file,
# engine.io.checkpoints:load_checkpoint unpickles one) or walk attributes out of the
# package (engine.builtin.models:nn.modules.module.torch.load). Only plain public names in
# the modules that hold model factories are trusted.
TRUSTED_FACTORY_MODULES = ("engine.builtin.models",)
# Modules that were renamed after checkpoints and files recorded them: version 0.1's
# recipes wrote ``samples.models:mlp`` into every checkpoint they saved.
MODULE_ALIASES = {"samples.models": "engine.builtin.models"}


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line (user code and libraries raise multi-line messages)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return (text[:limit] + "...") if len(text) > limit else text


def split_reference(ref: str) -> tuple[str, str]:
    """Split ``'a.b:f'`` or ``'dir/m.py:f'`` into (module or file, attribute path)."""
    target, sep, attr = ref.rpartition(":")
    # A Windows drive letter ("C:\\m.py") has no attribute after it.
    if not sep or not target or not attr or "/" in attr or "\\" in attr:
        raise LandscapeError(
            f"cannot read reference '{ref}': write it as module.path:callable or path/to/file.py:callable"
        )
    return MODULE_ALIASES.get(target, target), attr


def is_trusted(ref: str) -> bool:
    """True for references to model factories defined in Landscape's own modules (e.g. ``engine.builtin.models:mlp``).

    The name must be a plain public name *defined* in that module, not something it
    imported (``engine.builtin.models:torch`` is refused).
    """
    target, attr = split_reference(ref)
    if target not in TRUSTED_FACTORY_MODULES or not attr.isidentifier() or attr.startswith("_"):
        return False
    module = importlib.import_module(target)
    return getattr(getattr(module, attr, None), "__module__", None) == target


def absolute_reference(ref: str) -> str:
    """The same reference with a file path made absolute and a renamed module under its
    current name, so provenance survives a ``cd`` and two spellings compare equal."""
    target, attr = split_reference(ref)
    if target.endswith(".py"):
        return f"{Path(target).resolve()}:{attr}"
    return f"{target}:{attr}"


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise LandscapeError(f"no such Python file: {path}")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"_landscape_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LandscapeError(f"cannot import {path}: it is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # Let the file import its neighbours, as `python file.py` would.
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a script's sys.exit() must not end Landscape silently
        sys.modules.pop(name, None)
        raise LandscapeError(f"importing {path} failed: {type(exc).__name__}: {one_line(exc)}") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def resolve(ref: str) -> Callable[..., Any]:
    """Import the object a reference names; errors are one line."""
    target, attr = split_reference(ref)
    if target.endswith(".py"):
        module = _import_file(Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise LandscapeError(
                f"cannot import module '{target}' for '{ref}' ({one_line(exc)}); check the name or use path/to/file.py:callable"
            ) from exc
        except (Exception, SystemExit) as exc:
            raise LandscapeError(f"importing '{target}' failed: {type(exc).__name__}: {one_line(exc)}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LandscapeError(f"'{target}' has no attribute '{attr}' (from '{ref}')")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LandscapeError(f"'{ref}' is not callable")
    return obj
