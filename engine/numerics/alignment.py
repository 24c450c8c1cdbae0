"""Permutation alignment of two networks by weight matching (Ainsworth et al. 2022, "Git Re-Basin", Algorithm 1).

Reordering a hidden layer's units (and the next layer's inputs with them) leaves the
function unchanged, so two trainings of one architecture can land in copies of the
same basin that differ only by such permutations. Weight matching picks, for every
hidden layer, the permutation of the second network's units that makes its weights
closest to the first's; the straight line between the first network and the aligned
second one then shows the basin rather than the permutation.

As in the reference code, the permutation structure is data (:class:`PermutationSpec`)
and the solver is generic. The spec is derived from the model's graph with
``torch.fx``: every tensor carries a label saying which hidden layer's units its
channel axis (dim 1) holds, layers read and write labels, and anything whose effect
on channels is unknown stops the derivation with a one-line :class:`LandscapeError`
rather than a wrong alignment.
"""

from __future__ import annotations

import copy
import itertools
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import fx, nn
from torch.func import functional_call
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.modules.batchnorm import _BatchNorm

from engine.errors import LandscapeError

SUPPORTED = "supported: MLPs and conv nets with BatchNorm, without skip connections"
Entry = tuple[str, int, int]  # (state key, axis, block)


@dataclass(frozen=True)
class PermutationSpec:
    """Which axes of which state entries each hidden-unit permutation acts on.

    A group is named after the layer that produces its units. ``block`` is how many
    consecutive entries along the axis belong to one unit: 1 normally, H*W for a
    Linear reading a flattened conv output of C channels x H x W. ``buffers`` are
    entries that are permuted but not matched (BatchNorm running statistics):
    they follow the weights and say nothing about which units correspond.
    """

    groups: dict[str, tuple[Entry, ...]]
    sizes: dict[str, int]
    buffers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Alignment:
    """The second network permuted onto the first, and how the matching went."""

    state: dict[str, torch.Tensor]  # b's full state (params + buffers), permuted
    perms: dict[str, np.ndarray]
    spec: PermutationSpec
    iterations: int  # sweeps of coordinate descent
    similarity_before: float  # sum <W_a, W_b> over matched weights, identity permutation
    similarity_after: float


# -- the spec from the model's graph ------------------------------------------------------

class _Units(NamedTuple):
    """What dim 1 of a tensor holds: the units of ``group``, each as ``block`` consecutive entries."""

    group: str
    block: int


# Softmax counts as elementwise: it is equivariant to a permutation of any axis, not only of the one it normalizes.
_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink,
    nn.Softmax, nn.LogSoftmax, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity,
)
_ELEMENTWISE_FUNCTIONS = {
    torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, torch.tanh, F.tanh,
    torch.sigmoid, F.sigmoid, F.hardtanh, F.hardswish, F.hardsigmoid, F.softplus, F.softsign, F.logsigmoid,
    torch.softmax, F.softmax, torch.log_softmax, F.log_softmax, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
    torch.clone, torch.detach,
}
_ELEMENTWISE_METHODS = {
    "relu", "tanh", "sigmoid", "softmax", "log_softmax", "clone", "detach", "contiguous", "float", "double", "to",
}
# Pooling keeps the channels as long as they are dim 1, i.e. the input is batched: spatial dims + 2.
_POOLS: dict[object, int] = {
    nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
    nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3,
    nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3,
    F.max_pool1d: 1, F.max_pool2d: 2, F.max_pool3d: 3, F.avg_pool1d: 1, F.avg_pool2d: 2, F.avg_pool3d: 3,
    F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3,
    F.adaptive_max_pool1d: 1, F.adaptive_max_pool2d: 2, F.adaptive_max_pool3d: 3,
}
_RESHAPES = {torch.flatten, torch.reshape, "flatten", "view", "reshape"}
_ELEMENTWISE_BINARY = {
    operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div,
    "add", "sub", "mul", "div",
}
_CONCATENATIONS = {torch.cat, torch.concat, torch.stack, torch.hstack, torch.vstack}
_NOT_TENSORS = {getattr, "size", "dim"}  # results say nothing about the units


def permutation_spec(model: nn.Module, example_input: torch.Tensor) -> PermutationSpec:
    """The hidden-unit permutations of ``model``, read from its ``torch.fx`` graph.

    Shapes come from running the graph of a copy on the meta device, so nothing is
    computed and the model (weights, buffers, train/eval flags) is not touched.
    """
    graph_module = _trace(model)
    _propagate_shapes(graph_module, example_input.to("meta"))
    builder = _SpecBuilder(graph_module)
    for node in graph_module.graph.nodes:
        builder.visit(node)
    return builder.spec()


def _trace(model: nn.Module) -> fx.GraphModule:
    """The graph of an eval-mode copy of ``model`` whose tensors are on the meta device."""
    if isinstance(model, torch.jit.ScriptModule):
        raise _untraceable("it is a TorchScript module; pass the original nn.Module")
    shadow = _meta_copy(model).eval()  # eval: BatchNorm then takes a batch of one
    try:
        return fx.symbolic_trace(shadow)
    except Exception as exc:  # fx raises many types (TraceError, AssertionError, TypeError...)
        raise _untraceable(_first_line(exc)) from exc


def _untraceable(reason: str) -> LandscapeError:
    return LandscapeError(
        f"cannot trace the model with torch.fx ({reason}); weight matching needs a forward without data-dependent control flow"
    )


def _meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy that shares no data: every parameter and buffer becomes a meta tensor of its shape."""
    memo: dict[int, object] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        meta = tensor.detach().to("meta")
        memo[id(tensor)] = nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


def _propagate_shapes(graph_module: fx.GraphModule, example_input: torch.Tensor) -> None:
    """Record every node's output shape (``node.meta['tensor_meta']``), running on meta tensors."""
    try:  # run once first: ShapeProp prints a traceback before it re-raises
        graph_module(example_input)
    except Exception as exc:
        raise LandscapeError(
            f"the example input of shape {tuple(example_input.shape)} does not fit the model ({_first_line(exc)})"
        ) from exc
    ShapeProp(graph_module).propagate(example_input)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _SpecBuilder:
    """Walks the graph in order, labelling each node's output with the units its dim 1 holds."""

    def __init__(self, graph_module: fx.GraphModule) -> None:
        self.modules = dict(graph_module.named_modules())
        self.labels: dict[fx.Node, _Units | None] = {}
        self.groups: dict[str, list[Entry]] = {}
        self.sizes: dict[str, int] = {}
        self.buffers: set[str] = set()
        self.outputs: set[str] = set()  # groups that are model outputs: never permuted
        self.called: set[str] = set()

    def spec(self) -> PermutationSpec:
        kept = [name for name in self.groups if name not in self.outputs]
        groups = {name: tuple(self.groups[name]) for name in kept}
        keys = {key for entries in groups.values() for key, _, _ in entries}
        return PermutationSpec(groups, {name: self.sizes[name] for name in kept}, frozenset(self.buffers & keys))

    def visit(self, node: fx.Node) -> None:
        if node.op == "output":
            self.outputs |= {label.group for label in self._input_labels(node) if label is not None}
        elif node.op in ("placeholder", "get_attr"):
            self.labels[node] = None
        elif node.op == "call_module":
            self.labels[node] = self._module(node, self.modules[node.target])
        else:
            self.labels[node] = self._function(node)

    # -- modules
    def _module(self, node: fx.Node, module: nn.Module) -> _Units | None:
        if type(module) in (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d):
            return self._layer(node, module)
        if isinstance(module, _BatchNorm):
            return self._batch_norm(node, module)
        if isinstance(module, _ELEMENTWISE_MODULES):
            return self._source_label(node)
        if type(module) in _POOLS:
            return self._pool(node, _POOLS[type(module)])
        if isinstance(module, nn.Flatten):
            return self._reshape(node)
        if any(True for _ in itertools.chain(module.parameters(), module.buffers())):
            raise _unsupported(f"{self._at(node)} has weights whose effect on channels is unknown")
        return self._unknown(node)

    def _layer(self, node: fx.Node, module: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d) -> _Units:
        """A new group for the layer's outputs; its weight's input axis joins the input's group."""
        self._call_once(node)
        source = node.args[0]
        dims = len(_shape(source))
        if isinstance(module, nn.Linear) and dims != 2:
            raise _unsupported(f"{self._at(node)} reads a {dims}-d tensor; Linear layers must see (batch, features)")
        if not isinstance(module, nn.Linear):
            if module.groups != 1:
                raise _unsupported(f"grouped convolution (groups={module.groups}) at {self._at(node)}")
            if dims != module.weight.dim():
                raise _unsupported(f"{self._at(node)} reads an unbatched input")
        label = self.labels[source]
        if label is not None:
            self._add(label.group, f"{node.target}.weight", 1, label.block)
        group = str(node.target)
        self.groups[group] = []
        self.sizes[group] = module.weight.shape[0]
        for name in ("weight", "bias"):
            if getattr(module, name) is not None:
                self._add(group, f"{node.target}.{name}", 0, 1)
        return _Units(group, 1)

    def _batch_norm(self, node: fx.Node, module: _BatchNorm) -> _Units | None:
        """BatchNorm's per-channel tensors follow its input's units."""
        self._call_once(node)
        label = self.labels[node.args[0]]
        if label is None:
            return None
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(module, name) is not None:
                key = f"{node.target}.{name}"
                self._add(label.group, key, 0, label.block)
                if name.startswith("running_"):
                    self.buffers.add(key)
        return label

    # -- functions and methods
    def _function(self, node: fx.Node) -> _Units | None:
        target = node.target
        if target in _NOT_TENSORS:
            return None
        if target in _ELEMENTWISE_FUNCTIONS or target in _ELEMENTWISE_METHODS:
            return self._source_label(node)
        if target in _POOLS:
            return self._pool(node, _POOLS[target])
        if target in _RESHAPES:
            return self._reshape(node)
        if target in _ELEMENTWISE_BINARY:
            return self._binary(node)
        if target in _CONCATENATIONS and any(self._input_labels(node)):
            raise _unsupported(f"concatenation at {self._at(node)} joins hidden layers (not supported yet)")
        return self._unknown(node)

    def _source_label(self, node: fx.Node) -> _Units | None:
        return self.labels[node.args[0]]

    def _pool(self, node: fx.Node, spatial_dims: int) -> _Units | None:
        label = self.labels[node.args[0]]
        if label is not None and len(_shape(node.args[0])) != spatial_dims + 2:
            raise _unsupported(f"{self._at(node)} pools an unbatched hidden layer across its channels")
        return label

    def _reshape(self, node: fx.Node) -> _Units | None:
        """Flattening (batch, C, *spatial) to (batch, C * S) turns each channel into a block of S features."""
        label = self.labels[node.args[0]]
        if label is None:
            return None
        before, after = _shape(node.args[0]), _shape(node)
        if after == before:
            return label
        if after == (before[0], math.prod(before[1:])):
            return _Units(label.group, label.block * math.prod(before[2:]))
        raise _unsupported(f"{self._at(node)} reshapes a hidden layer {before} -> {after}; only flattening to (batch, features) is")

    def _binary(self, node: fx.Node) -> _Units | None:
        """Elementwise arithmetic keeps the units if every tensor operand holds the same ones."""
        labels = {self.labels[n] for n in node.all_input_nodes if "tensor_meta" in n.meta}
        if len(labels) <= 1:
            return next(iter(labels), None)
        op = _op_name(node)
        if op in ("add", "sub"):
            raise _unsupported(
                f"residual connection at {self._at(node)} joins two different layers (residual connections are not supported yet)"
            )
        raise _unsupported(f"'{op}' at {self._at(node)} combines a hidden layer with another tensor")

    def _unknown(self, node: fx.Node) -> None:
        """An op with unknown effect on channels is harmless only where no hidden layer flows in."""
        if any(self._input_labels(node)):
            raise _unsupported(f"'{_op_name(node)}' at {self._at(node)} has an unknown effect on a hidden layer's units")

    # -- bookkeeping
    def _input_labels(self, node: fx.Node) -> list[_Units | None]:
        return [self.labels[n] for n in node.all_input_nodes]

    def _add(self, group: str, key: str, axis: int, block: int) -> None:
        self.groups[group].append((key, axis, block))

    def _call_once(self, node: fx.Node) -> None:
        if node.target in self.called:
            raise _unsupported(f"{self._at(node)} is called more than once (shared weights)")
        self.called.add(node.target)

    def _at(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"module '{node.target}' ({type(self.modules[node.target]).__name__})"
        scope = list(node.meta.get("nn_module_stack", {}))
        return f"node '{node.name}'" + (f" ({scope[-1]})" if scope else "")


def _shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def _op_name(node: fx.Node) -> str:
    return node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))


def _unsupported(what: str) -> LandscapeError:
    return LandscapeError(f"weight matching does not support this model yet: {what}; {SUPPORTED}")


# -- matching -----------------------------------------------------------------------------

def weight_matching(
    spec: PermutationSpec,
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    *,
    seed: int = 0,
    max_iterations: int = 100,
) -> dict[str, np.ndarray]:
    """``perm[group]`` such that permuting b's units by it maximizes sum <W_a, P W_b>.

    Coordinate descent: each group in turn (in a seeded random order per sweep) gets the
    assignment that is best with the other groups held fixed; stop after a sweep that
    improves nothing, or after ``max_iterations`` sweeps. Similarities are summed in
    float64 on the CPU over the weights and biases touching the group; running
    statistics (``spec.buffers``) are left out, as they follow the weights.
    """
    return _match(spec, a, b, seed, max_iterations)[0]


def _match(
    spec: PermutationSpec, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], seed: int, max_iterations: int
) -> tuple[dict[str, np.ndarray], int]:
    """Weight matching's permutations and the number of sweeps it took."""
    if max_iterations < 1:
        raise LandscapeError(f"max_iterations must be at least 1, got {max_iterations}")
    a64, b64 = _matched(spec, a, "first"), _matched(spec, b, "second")
    axes = _axes_by_key(spec)
    perms = {group: np.arange(size) for group, size in spec.sizes.items()}
    names = list(spec.groups)
    rng = np.random.default_rng(seed)
    for sweep in range(1, max_iterations + 1):
        improved = False
        for index in rng.permutation(len(names)):
            group = names[index]
            similarity = _similarity_matrix(spec, group, a64, b64, axes, perms)
            candidate = linear_sum_assignment(similarity, maximize=True)[1]
            rows = np.arange(len(candidate))
            current, best = similarity[rows, perms[group]].sum(), similarity[rows, candidate].sum()
            if best > current + 1e-12 * max(1.0, abs(current)):  # ties keep the current order: no cycling
                perms[group], improved = candidate, True
        if not improved:
            break
    return perms, sweep


def _similarity_matrix(
    spec: PermutationSpec,
    group: str,
    a64: Mapping[str, torch.Tensor],
    b64: Mapping[str, torch.Tensor],
    axes: Mapping[str, tuple[tuple[int, str, int], ...]],
    perms: Mapping[str, np.ndarray],
) -> np.ndarray:
    """S[i, j] = how well b's unit j fits a's unit i, with b's other axes already permuted."""
    size = spec.sizes[group]
    similarity = torch.zeros(size, size, dtype=torch.float64)
    for key, axis, _ in spec.groups[group]:
        if key in a64:
            b_other = _permuted(b64[key], axes[key], perms, skip=axis)
            similarity += _units(a64[key], axis, size) @ _units(b_other, axis, size).T
    return similarity.numpy()


def _units(tensor: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    """One row per unit: a block of consecutive entries along ``axis`` and everything across the other axes."""
    return tensor.movedim(axis, 0).reshape(size, -1)


def _similarity(spec: PermutationSpec, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """sum <W_a, W_b> over the matched weights: the objective weight matching maximizes."""
    a64, b64 = _matched(spec, a, "first"), _matched(spec, b, "second")
    return float(sum((a64[key] * b64[key]).sum() for key in a64))


def _matched(spec: PermutationSpec, state: Mapping[str, torch.Tensor], which: str) -> dict[str, torch.Tensor]:
    """The matched entries (weights touching a group, not buffers) on the CPU in float64."""
    _check_state(spec, state, f"the {which} state")
    keys = {key for entries in spec.groups.values() for key, _, _ in entries} - spec.buffers
    return {key: state[key].detach().to("cpu", torch.float64) for key in sorted(keys)}


def _check_state(spec: PermutationSpec, state: Mapping[str, torch.Tensor], which: str) -> None:
    for group, entries in spec.groups.items():
        for key, axis, block in entries:
            if key not in state:
                raise LandscapeError(f"{which} has no tensor {key}; is it a state dict of this model?")
            length, expected = state[key].shape[axis], spec.sizes[group] * block
            if length != expected:
                raise LandscapeError(f"{key} has {length} entries along axis {axis} in {which}, expected {expected}")


# -- permuting ----------------------------------------------------------------------------

def permute(
    spec: PermutationSpec, perms: Mapping[str, np.ndarray], state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A new state dict with every grouped axis reordered: ``new[key] = state[key].index_select(axis, perm)``.

    ``perm[i]`` is the unit of ``state`` placed at position i (expanded to blocks).
    Buffers in a group (running statistics) move with their weights; entries in no
    group are copied unchanged. Dtypes and devices are kept.
    """
    _check_state(spec, state, "the state")
    _check_perms(spec, perms)
    axes = _axes_by_key(spec)
    return {key: _permuted(tensor.detach(), axes.get(key, ()), perms) for key, tensor in state.items()}


def _check_perms(spec: PermutationSpec, perms: Mapping[str, np.ndarray]) -> None:
    for group, size in spec.sizes.items():
        if group not in perms or not np.array_equal(np.sort(np.asarray(perms[group])), np.arange(size)):
            raise LandscapeError(f"the permutations have no permutation of {size} units for group {group}")


def _axes_by_key(spec: PermutationSpec) -> dict[str, tuple[tuple[int, str, int], ...]]:
    """state key -> ((axis, group, block), ...): every permutation acting on that tensor."""
    axes: dict[str, list[tuple[int, str, int]]] = {}
    for group, entries in spec.groups.items():
        for key, axis, block in entries:
            axes.setdefault(key, []).append((axis, group, block))
    return {key: tuple(found) for key, found in axes.items()}


def _permuted(
    tensor: torch.Tensor, axes: Iterable[tuple[int, str, int]], perms: Mapping[str, np.ndarray], skip: int | None = None
) -> torch.Tensor:
    """``tensor`` with each of its grouped axes (but ``skip``) reordered; a new tensor either way."""
    result = tensor
    for axis, group, block in axes:
        if axis != skip:
            result = result.index_select(axis, _expanded(perms[group], block, tensor.device))
    return result.clone() if result is tensor else result


def _expanded(perm: np.ndarray, block: int, device: torch.device) -> torch.Tensor:
    """Unit order -> entry order: unit p covers entries p*block .. p*block + block - 1."""
    units = torch.as_tensor(np.asarray(perm), dtype=torch.long)
    return (units[:, None] * block + torch.arange(block)).reshape(-1).to(device)


# -- checking and the one call ------------------------------------------------------------

def max_output_difference(
    model: nn.Module,
    state_1: Mapping[str, torch.Tensor],
    state_2: Mapping[str, torch.Tensor],
    inputs: Iterable[torch.Tensor],
) -> float:
    """Largest |f_1(x) - f_2(x)| over the input batches, in eval mode; 0 for a pure permutation."""
    with torch.no_grad():
        evaluated = copy.deepcopy(model).eval()  # a copy: the caller's model keeps its mode
        states = dict(state_1), dict(state_2)
        differences = [
            (functional_call(evaluated, states[0], (x,)) - functional_call(evaluated, states[1], (x,))).abs().max().item()
            for x in inputs
        ]
    if not differences:
        raise LandscapeError("max_output_difference needs at least one input batch")
    return max(differences)


def align(
    model: nn.Module,
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    example_input: torch.Tensor,
    *,
    seed: int = 0,
) -> Alignment:
    """Permute ``b``'s hidden units onto ``a``'s: spec, weight matching and permutation in one call.

    ``a`` and ``b`` are full state dicts (``model.state_dict()`` layout).
    """
    spec = permutation_spec(model, example_input)
    perms, sweeps = _match(spec, a, b, seed, max_iterations=100)
    state = permute(spec, perms, b)
    return Alignment(
        state=state,
        perms=perms,
        spec=spec,
        iterations=sweeps,
        similarity_before=_similarity(spec, a, b),
        similarity_after=_similarity(spec, a, state),
    )
