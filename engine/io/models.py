"""Build the architecture a checkpoint's weights belong to, and load them into it.

The architecture comes from (in this order) the user's ``--model`` reference, the
factory a self-describing checkpoint names, or the module the file carries
(TorchScript, or a pickle the user chose to trust).

A factory's module is first built on the meta device, which gives every shape and
allocates nothing, so weights that do not fit it (``--model-kwargs '{"width": 20000}'``
against a width-50 checkpoint) are refused before gigabytes are allocated.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import torch
from torch import nn

from engine.io.checkpoints import Checkpoint
from engine.errors import LandscapeError
from engine.io.references import absolute_reference, is_trusted, one_line, resolve

STRIPPABLE_PREFIXES = ("model.", "module.", "net.", "_orig_mod.")


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """Parse ``--model-kwargs`` JSON into a dict."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LandscapeError(f"--model-kwargs is not valid JSON ({exc.msg}); example: '{{\"width\": 200}}'") from exc
    if not isinstance(value, dict):
        raise LandscapeError("--model-kwargs must be a JSON object, for example '{\"width\": 200}'")
    return value


def build_model(
    checkpoint: Checkpoint,
    model_ref: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, str | None, dict[str, Any]]:
    """Return (module with the checkpoint's weights, model reference used, kwargs used).

    The returned module is new (built here), so the engine may move it in place.
    """
    if model_ref is not None:
        ref = absolute_reference(model_ref)
        if model_kwargs is None and _same_reference(ref, checkpoint.model_factory):
            # The user confirmed the factory the checkpoint names: keep the checkpoint's kwargs.
            kwargs = dict(checkpoint.model_kwargs)
        else:
            kwargs = dict(model_kwargs or {})
        model = _build(model_ref, kwargs, checkpoint)
    elif checkpoint.model_factory is not None:
        ref = _canonical(checkpoint.model_factory)  # a renamed module (samples.models) under its current name
        if not is_trusted(ref):
            raise LandscapeError(
                f"{checkpoint.path} names model factory '{ref}', which is not one of Landscape's model factories; "
                f"importing it runs its code, so if you trust it pass --model {ref} to confirm"
            )
        kwargs = dict(checkpoint.model_kwargs if model_kwargs is None else model_kwargs)
        model = _build(ref, kwargs, checkpoint)
    elif checkpoint.module is not None:
        return checkpoint.module, None, {}
    else:
        raise LandscapeError(
            f"{checkpoint.path} holds only weights ({checkpoint.kind}); name the architecture with "
            "--model module.path:callable or --model path/to/file.py:callable (and --model-kwargs JSON)"
        )
    load_weights(model, checkpoint.state_dict, source=str(checkpoint.path))
    return model, ref, kwargs


def _canonical(ref: str) -> str:
    try:
        return absolute_reference(ref)
    except LandscapeError:  # a malformed reference: is_trusted refuses it with its own message
        return ref


def _same_reference(ref: str, named: str | None) -> bool:
    if named is None:
        return False
    try:
        return ref == absolute_reference(named)
    except LandscapeError:  # a malformed reference inside the checkpoint
        return False


def _build(ref: str, kwargs: dict[str, Any], checkpoint: Checkpoint) -> nn.Module:
    """The factory's module, built only after its shapes were found to fit the checkpoint's weights."""
    factory = resolve(ref)
    _check_fit_on_meta(factory, ref, kwargs, checkpoint)
    return _call_factory(factory, ref, kwargs)


def _check_fit_on_meta(factory: Callable[..., Any], ref: str, kwargs: dict[str, Any], checkpoint: Checkpoint) -> None:
    """Refuse weights that do not fit the factory's module before that module allocates memory.

    The factory therefore runs twice, first under ``torch.device("meta")``. One that cannot
    run there (it reads values: ``.item()``, numpy, data-dependent init; or moves the module
    with ``.to("cpu")``) is not checked here: the real build runs, and load_weights checks
    the same keys and shapes after it.
    """
    try:
        with torch.device("meta"):
            skeleton = factory(**kwargs)
        model_state = skeleton.state_dict()
    except Exception:  # noqa: BLE001 - user code may raise anything; the real build reports it
        return
    state, problems = _fit(model_state, checkpoint.state_dict)
    if problems:
        buffers = {name for name, _ in skeleton.named_buffers()}
        held = sum(v.numel() for k, v in state.items() if k not in buffers)
        built = sum(p.numel() for p in skeleton.parameters())
        raise LandscapeError(
            f"the weights in {checkpoint.path} ({held:,} parameters) do not fit the model built from {ref} with "
            f"{_kwargs_text(kwargs)} ({built:,} parameters): {'; '.join(problems)}; check --model and --model-kwargs"
        )


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    """Kwargs as JSON for a message; a checkpoint's kwargs may hold tensors, which JSON cannot show."""
    return json.dumps(dict(kwargs), default=repr)


def _call_factory(factory: Callable[..., Any], ref: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise LandscapeError(f"calling {ref} with {_kwargs_text(kwargs)} failed: {one_line(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise LandscapeError(f"calling {ref} failed: {type(exc).__name__}: {one_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise LandscapeError(f"{ref} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _mismatch(model_state: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]):
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(model_state[k].shape)}"
        for k in model_state
        if k in state and tuple(state[k].shape) != tuple(model_state[k].shape)
    ]
    return missing, unexpected, misshaped


def _strip_common_prefix(state: Mapping[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor] | None:
    """Undo the prefixes that wrappers add (Lightning's ``model.``, DataParallel's ``module.``)."""
    for prefix in STRIPPABLE_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if set(stripped) & model_keys:
                return stripped
    return None


def _listing(label: str, items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{label} {len(items)}: {shown}{more}"


def _fit(
    model_state: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> tuple[Mapping[str, torch.Tensor], list[str]]:
    """``state`` with a wrapper's prefix undone, and what does not fit the model (nothing when all fits).

    Only shapes are read, so ``model_state`` may hold meta tensors.
    """
    # BatchNorm's num_batches_tracked is bookkeeping that old checkpoints lack.
    optional = {k for k in model_state if k.endswith("num_batches_tracked")}
    missing, unexpected, misshaped = _mismatch(model_state, state)
    if missing or unexpected or misshaped:
        stripped = _strip_common_prefix(state, set(model_state))
        if stripped is not None:
            state = stripped
            missing, unexpected, misshaped = _mismatch(model_state, state)
    missing = [k for k in missing if k not in optional]
    problems = [
        _listing(label, items)
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if items
    ]
    return state, problems


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state`` strictly, or raise one line listing missing, unexpected and mis-shaped keys."""
    state, problems = _fit(model.state_dict(), state)
    if problems:
        raise LandscapeError(
            f"the weights in {source} do not fit the model: {'; '.join(problems)}; check --model and --model-kwargs"
        )
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(dtypes) == 1:
        # Evaluate in the checkpoint's precision (a float64 checkpoint stays float64).
        model.to(dtype=dtypes.pop())
    model.load_state_dict(dict(state), strict=False)
