"""Weight matching (Git Re-Basin) against ground truth made by hand.

``b`` is ``a`` with every hidden layer's units shuffled by the test itself (index_select
on the known layers, not :func:`permute`), so the right answer is known exactly: the
inverse shuffles, and ``b`` permuted by them is ``a`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from engine.builtin import models as builtin
from engine.errors import LandscapeError
from engine.numerics.alignment import (
    align,
    max_output_difference,
    permutation_spec,
    permute,
    weight_matching,
)
from engine.numerics.threads import intra_op_threads
from tests import reference_models, zoo


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: on a busy machine OpenMP's fork-and-join on two threads costs 10-100x the work."""
    with intra_op_threads(1):
        yield

# -- models ---------------------------------------------------------------------------------

class FunctionalMLP(nn.Module):
    """Activations called as functions (torch.relu, F.relu): call_function nodes for fx."""

    def __init__(self, d: int = 5, width: int = 7) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.relu(self.fc2(torch.relu(self.fc1(x)))))


class FlattenCNN(nn.Module):
    """Conv with and without bias, AvgPool2d, torch.flatten(x, 1), BatchNorm1d after a Linear."""

    def __init__(self, channels: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.pool = nn.AvgPool2d(2)  # 6x6 -> 3x3
        self.fc1 = nn.Linear(channels * 9, 6)
        self.bn3 = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.pool(F.relu(self.bn2(self.conv2(h))))
        return self.fc2(F.relu(self.bn3(self.fc1(torch.flatten(h, 1)))))


class SizeViewCNN(nn.Module):
    """Flattens with x.view(x.size(0), -1) after AdaptiveAvgPool2d and F.max_pool2d."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(channels * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)  # 6x6 -> 3x3
        h = self.pool(torch.tanh(self.conv2(h)))
        return self.fc(h.view(h.size(0), -1))


def activations_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.GELU(), nn.Dropout(0.3), nn.Linear(8, 8),
        nn.BatchNorm1d(8), nn.Sigmoid(), nn.Identity(), nn.Linear(8, 6), nn.LeakyReLU(0.1), nn.Linear(6, 2),
    )


@dataclass(frozen=True)
class Case:
    name: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # one sample

    def inputs(self, seed: int, batches: int = 2, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return [torch.randn(16, *self.input_shape, generator=generator, dtype=dtype) for _ in range(batches)]


CASES = [
    Case("reference_mlp", reference_models.mlp, (4,)),
    Case("builtin_mlp", lambda: builtin.mlp(in_dim=5, width=12, depth=3), (5,)),
    Case("zoo_tiny_mlp", zoo.tiny_mlp, (4,)),
    Case("activations_mlp", activations_mlp, (5,)),
    Case("functional_mlp", FunctionalMLP, (5,)),
    Case("small_cnn", lambda: builtin.small_cnn(channels=6), (1, 8, 8)),
    Case("cnn_bn", reference_models.cnn_bn, (1, 6, 6)),
    Case("zoo_tiny_cnn", zoo.tiny_cnn, (1, 6, 6)),
    Case("flatten_cnn", FlattenCNN, (1, 6, 6)),
    Case("size_view_cnn", SizeViewCNN, (1, 6, 6)),
    Case("reference_view_cnn", reference_models.view_cnn, (1, 6, 6)),
]


def seeded(case: Case, seed: int) -> nn.Module:
    """The case's model from a seed, with BatchNorm affine parameters and running statistics far from (1, 0)."""
    torch.manual_seed(seed)
    model = case.factory()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_()
                module.running_mean.uniform_(0.1, 1.0)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
    return model


def shuffled(model: nn.Module, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """b = the model's state with each hidden layer's units reordered by hand, and each layer's order.

    Walks Linear/Conv2d/BatchNorm modules in registration order (data-flow order for these
    models): a layer's rows and the BatchNorm after it take the layer's order, the next
    layer's input columns take it too, in blocks of H*W after a flatten. The last layer's
    rows (the outputs) stay.
    """
    state = {key: value.clone() for key, value in model.state_dict().items()}
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d, _BatchNorm))]
    last = max(i for i, (_, module) in enumerate(layers) if not isinstance(module, _BatchNorm))
    orders: dict[str, torch.Tensor] = {}
    incoming = None
    for i, (name, module) in enumerate(layers):
        if isinstance(module, _BatchNorm):
            for part in ("weight", "bias", "running_mean", "running_var"):
                state[f"{name}.{part}"] = state[f"{name}.{part}"].index_select(0, incoming)
            continue
        if incoming is not None:
            weight = state[f"{name}.weight"]
            block = weight.shape[1] // len(incoming)
            columns = (incoming[:, None] * block + torch.arange(block)).reshape(-1)
            state[f"{name}.weight"] = weight.index_select(1, columns)
        if i == last:
            break
        incoming = torch.randperm(module.weight.shape[0], generator=generator)
        for part in ("weight", "bias"):
            if f"{name}.{part}" in state:
                state[f"{name}.{part}"] = state[f"{name}.{part}"].index_select(0, incoming)
        orders[name] = incoming
    return state, orders


def example(case: Case, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(3, *case.input_shape, dtype=dtype)


def non_identity(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random order of ``size`` units that moves at least one (if there are two)."""
    order = rng.permutation(size)
    return np.roll(order, 1) if (order == np.arange(size)).all() else order


# -- exact recovery -------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_weight_matching_recovers_the_inverse_of_a_hand_made_shuffle_exactly(case: Case) -> None:
    model = seeded(case, 0).double()
    a = model.state_dict()
    b, orders = shuffled(model, torch.Generator().manual_seed(1))
    assert any(not torch.equal(b[key], a[key]) for key in a)
    spec = permutation_spec(model, example(case, torch.float64))
    perms = weight_matching(spec, a, b)
    assert set(perms) == set(orders)
    for name, order in orders.items():
        np.testing.assert_array_equal(perms[name], np.argsort(order.numpy()))
    back = permute(spec, perms, b)
    assert list(back) == list(a)
    for key in a:  # running statistics and num_batches_tracked included
        assert back[key].dtype == a[key].dtype and torch.equal(back[key], a[key]), key


# -- the function is kept -------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_aligned_copy_computes_the_same_function_as_b(case: Case) -> None:
    model = seeded(case, 0)
    a = model.state_dict()
    b, _ = shuffled(model, torch.Generator().manual_seed(2))
    aligned = align(model, a, b, example(case))
    assert all(aligned.state[key].dtype == b[key].dtype for key in b)
    assert max_output_difference(model, b, aligned.state, case.inputs(seed=3)) < 1e-5


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_random_permutation_of_the_hidden_units_leaves_the_function_unchanged(case: Case) -> None:
    model = seeded(case, 0)
    a = model.state_dict()
    spec = permutation_spec(model, example(case))
    rng = np.random.default_rng(4)
    perms = {group: non_identity(rng, size) for group, size in spec.sizes.items()}
    moved = permute(spec, perms, a)
    assert any(not torch.equal(moved[key], a[key]) for key in a)
    inputs = case.inputs(seed=5)
    assert max_output_difference(model, a, moved, inputs) < 1e-5
    assert max_output_difference(model, a, seeded(case, 1).state_dict(), inputs) > 1e-3  # the check can fail


def test_deriving_the_spec_and_checking_outputs_leave_the_model_untouched() -> None:
    case = next(case for case in CASES if case.name == "cnn_bn")
    model = seeded(case, 0)
    model.train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    permutation_spec(model, example(case))
    max_output_difference(model, before, before, case.inputs(seed=6))
    assert all(module.training for module in model.modules())
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


# -- independent trainings ------------------------------------------------------------------

def regression_data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=generator)
    return x, torch.sin(x @ torch.tensor([[1.0], [-2.0], [0.5], [1.5]]))


def trained_mlp(seed: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = reference_models.mlp(d=4, width=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def barrier(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """max_t L((1-t)a + tb) - ((1-t)L(a) + tL(b)) on an 11-point line, in plain torch."""
    model = reference_models.mlp(d=4, width=16)
    ts = np.linspace(0.0, 1.0, 11)
    losses = []
    for t in ts:
        model.load_state_dict({key: (1 - t) * a[key] + t * b[key] for key in a})
        with torch.no_grad():
            losses.append(F.mse_loss(model(x), y).item())
    return max(loss - ((1 - t) * losses[0] + t * losses[-1]) for t, loss in zip(ts, losses))


def test_aligning_two_independent_trainings_lowers_the_barrier_and_raises_the_similarity() -> None:
    x, y = regression_data()
    a, b = trained_mlp(0, x, y), trained_mlp(1, x, y)
    aligned = align(reference_models.mlp(d=4, width=16), a, b, x[:2])
    assert aligned.iterations >= 1
    assert aligned.similarity_after >= aligned.similarity_before
    assert barrier(a, aligned.state, x, y) < barrier(a, b, x, y)


def test_weight_matching_is_deterministic_for_a_seed() -> None:
    model = reference_models.mlp(d=4, width=16)
    a, b = seeded(CASES[0], 0).state_dict(), seeded(CASES[0], 1).state_dict()
    spec = permutation_spec(model, torch.randn(2, 4))
    first, second = weight_matching(spec, a, b, seed=7), weight_matching(spec, a, b, seed=7)
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[group], second[group]) for group in first)


# -- the spec -------------------------------------------------------------------------------

def test_small_cnn_has_two_channel_groups_and_its_linear_reads_the_second_in_blocks_of_16() -> None:
    channels = 6
    spec = permutation_spec(builtin.small_cnn(channels=channels), torch.randn(2, 1, 8, 8))
    assert spec.sizes == {"0": channels, "3": channels}
    assert ("8.weight", 1, 16) in spec.groups["3"]
    assert {"1.running_mean", "1.running_var", "4.running_mean", "4.running_var"} == spec.buffers
    entries = {(key, axis) for group in spec.groups.values() for key, axis, _ in group}
    assert ("0.weight", 1) not in entries  # the input features
    assert ("8.weight", 0) not in entries and ("8.bias", 0) not in entries  # the classes
    assert not any("num_batches_tracked" in key for key, _ in entries)


def test_a_state_of_another_model_is_a_clear_error() -> None:
    model = reference_models.mlp(d=4, width=16)
    spec = permutation_spec(model, torch.randn(2, 4))
    other = reference_models.mlp(d=4, width=8).state_dict()
    with pytest.raises(LandscapeError, match="0.weight has 8 entries along axis 0 in the second state, expected 16"):
        weight_matching(spec, model.state_dict(), other)


# -- what is refused ------------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_in = nn.Linear(4, 8)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
        self.fc_out = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc_in(x))
        return self.fc_out(h + self.block(h))


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = -x
        return self.fc2(torch.relu(self.fc1(x)))


class Concatenated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Linear(4, 8)
        self.right = nn.Linear(4, 8)
        self.out = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], dim=1))


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(3 * 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.attention(x, x, x)[0].flatten(1))


REFUSED = [
    ("residual", Residual, (2, 4), "residual connection at node 'add'"),
    ("torchscript", lambda: torch.jit.script(reference_models.mlp()), (2, 4), "cannot trace the model with torch.fx"),
    ("data_dependent", DataDependent, (2, 4), "cannot trace the model with torch.fx"),
    ("grouped_conv", lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(),
                                           nn.Linear(4 * 2 * 2, 1)), (2, 1, 6, 6), "grouped convolution (groups=2) at module '2'"),
    ("layer_norm", lambda: nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 1)), (2, 4),
     "module '1' (LayerNorm)"),
    ("concatenation", Concatenated, (2, 4), "concatenation at node 'cat'"),
    ("embedding", lambda: nn.Sequential(nn.Embedding(10, 8), nn.Flatten(), nn.Linear(24, 1)), (2, 3), "(Embedding)"),
    ("attention", Attention, (2, 3, 8), "module 'attention' (MultiheadAttention)"),
]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
@pytest.mark.parametrize("name, factory, shape, says", REFUSED, ids=[case[0] for case in REFUSED])
def test_an_unsupported_model_is_refused_with_a_one_line_message_naming_the_op(name, factory, shape, says) -> None:
    torch.manual_seed(0)
    example_input = torch.randint(0, 10, shape) if name == "embedding" else torch.randn(shape)
    with pytest.raises(LandscapeError) as refused:
        permutation_spec(factory(), example_input)
    message = str(refused.value)
    assert "\n" not in message
    assert says in message
