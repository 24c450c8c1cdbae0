"""engine.io.data.load_data and engine.numerics.problem against real files in tmp_path."""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from engine.io.data import DataSet, load_data, tensor_sha256
from engine.errors import LandscapeError
from engine.numerics.problem import Problem, resolve_loss
from tests import zoo

N, D = 12, 3


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message.strip(), "empty error message"
    assert "\n" not in message and "\r" not in message, f"multi-line error: {message!r}"
    return message


def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, D)).astype(np.float32), rng.integers(0, 3, size=N).astype(np.int64)


USER_CODE = textwrap.dedent(
    f"""
    import numpy as np
    import torch

    def _arrays():
        rng = np.random.default_rng(0)
        return rng.standard_normal(({N}, {D})).astype(np.float32), rng.integers(0, 3, size={N}).astype(np.int64)

    def pair():
        x, y = _arrays()
        return torch.from_numpy(x), torch.from_numpy(y)

    class _Items(torch.utils.data.Dataset):
        def __init__(self):
            self.x, self.y = _arrays()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return torch.from_numpy(self.x[i]), torch.tensor(self.y[i])

    def dataset():
        return _Items()

    def broken():
        raise RuntimeError("no data today")

    class _Failing(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            raise KeyError("sample %d is gone" % i)

    def failing_dataset():
        return _Failing()

    class _Ragged(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(i + 1), 0

    def ragged_dataset():
        return _Ragged()
    """
)


@pytest.fixture
def sources(tmp_path, monkeypatch) -> dict[str, str]:
    """The same 12 samples as every supported kind of source."""
    x, y = arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "dict.pt")
    torch.save((torch.from_numpy(x), torch.from_numpy(y)), tmp_path / "tuple.pt")
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle["x"], handle["y"] = x, y
    (tmp_path / "userdata.py").write_text(USER_CODE)
    module = f"landscape_testdata_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return {
        "npz": str(tmp_path / "d.npz"),
        "pt dict": str(tmp_path / "dict.pt"),
        "pt tuple": str(tmp_path / "tuple.pt"),
        "h5": str(tmp_path / "d.h5"),
        "module pair": f"{module}:pair",
        "module dataset": f"{module}:dataset",
        "file pair": f"{tmp_path / 'userdata.py'}:pair",
        "file dataset": f"{tmp_path / 'userdata.py'}:dataset",
    }


def test_every_source_gives_the_same_tensors_and_sha256(sources):
    x, y = arrays()
    loaded = {name: load_data(ref) for name, ref in sources.items()}
    for name, data in loaded.items():
        assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64, name
        assert torch.equal(data.x, torch.from_numpy(x)), name
        assert torch.equal(data.y, torch.from_numpy(y)), name
        assert data.total_samples == N and len(data) == N, name
        assert data.reference == sources[name]
    assert len({data.sha256 for data in loaded.values()}) == 1
    assert loaded["npz"].sha256 == tensor_sha256(torch.from_numpy(x), torch.from_numpy(y))


def test_sha256_changes_with_values_and_dtype():
    x, y = arrays()
    base = tensor_sha256(torch.from_numpy(x), torch.from_numpy(y))
    changed = x.copy()
    changed[0, 0] += 1
    assert tensor_sha256(torch.from_numpy(changed), torch.from_numpy(y)) != base
    assert tensor_sha256(torch.from_numpy(x).double(), torch.from_numpy(y)) != base


def test_big_endian_arrays_load_as_the_same_numbers(tmp_path):
    x, y = arrays()
    np.savez(tmp_path / "be.npz", x=x.astype(">f4"), y=y.astype(">i8"))
    data = load_data(str(tmp_path / "be.npz"))
    assert torch.equal(data.x, torch.from_numpy(x)) and torch.equal(data.y, torch.from_numpy(y))


@pytest.mark.parametrize("missing", ["x", "y"])
def test_file_without_x_or_y_gives_one_line_error(tmp_path, missing):
    x, y = arrays()
    present = {"x": x, "y": y}
    del present[missing]
    np.savez(tmp_path / "d.npz", **present)
    torch.save({k: torch.from_numpy(v) for k, v in present.items()}, tmp_path / "d.pt")
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        for key, value in present.items():
            handle[key] = value
    for name in ("d.npz", "d.pt", "d.h5"):
        with pytest.raises(LandscapeError) as exc:
            load_data(str(tmp_path / name))
        assert f"no array {missing}" in one_line(exc), name


def test_missing_files_give_one_line_errors(tmp_path):
    for name in ("gone.npz", "gone.pt", "gone.h5"):
        with pytest.raises(LandscapeError) as exc:
            load_data(str(tmp_path / name))
        assert "no such data file" in one_line(exc)
    with pytest.raises(LandscapeError) as exc:
        load_data(f"{tmp_path / 'gone.py'}:make")
    assert "no such Python file" in one_line(exc)
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "data.csv"))
    one_line(exc)


def test_object_dtype_npz_is_refused_without_unpickling(tmp_path):
    x, y = arrays()
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": i} for i in range(N)], dtype=object), y=y)
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "objects.npz"))
    one_line(exc)


def test_non_numeric_arrays_give_one_line_errors(tmp_path):
    x, y = arrays()
    np.savez(tmp_path / "strings.npz", x=np.array([f"s{i}" for i in range(N)]), y=y)
    with h5py.File(tmp_path / "bytes.h5", "w") as handle:
        handle["x"], handle["y"] = x, np.array([b"label"] * N)
    with h5py.File(tmp_path / "group.h5", "w") as handle:
        handle.create_group("x")
        handle["y"] = y
    for name in ("strings.npz", "bytes.h5", "group.h5"):
        with pytest.raises(LandscapeError) as exc:
            load_data(str(tmp_path / name))
        one_line(exc)


def test_corrupt_data_files_give_one_line_errors(tmp_path):
    junk = np.random.default_rng(1).bytes(512)
    for name in ("junk.npz", "junk.pt", "junk.h5"):
        (tmp_path / name).write_bytes(junk)
        with pytest.raises(LandscapeError) as exc:
            load_data(str(tmp_path / name))
        assert name in one_line(exc)
    (tmp_path / "text.pt").write_text("hello, I am text")
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "text.pt"))
    one_line(exc)


def test_mismatched_lengths_and_failing_callables_give_one_line_errors(tmp_path, sources):
    x, y = arrays()
    np.savez(tmp_path / "short.npz", x=x, y=y[:5])
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "short.npz"))
    assert "12" in one_line(exc) and "5" in str(exc.value)
    with pytest.raises(LandscapeError) as exc:
        load_data(sources["file pair"].replace(":pair", ":broken"))
    assert "no data today" in one_line(exc)


@pytest.mark.parametrize("name", ["failing_dataset", "ragged_dataset"])
def test_dataset_that_cannot_be_read_gives_one_line_error(sources, name):
    with pytest.raises(LandscapeError) as exc:
        load_data(sources["file dataset"].replace(":dataset", f":{name}"))
    assert "Dataset" in one_line(exc)


def test_max_samples_subset_is_deterministic_and_of_the_right_size(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 2)).astype(np.float32)
    y = np.arange(50, dtype=np.int64)  # y tells which rows were kept
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ref = str(tmp_path / "d.npz")
    first, second = load_data(ref, max_samples=7), load_data(ref, max_samples=7)
    assert len(first) == 7 and first.total_samples == 50
    assert torch.equal(first.x, second.x) and torch.equal(first.y, second.y) and first.sha256 == second.sha256
    kept = first.y.numpy()
    assert len(set(kept)) == 7 and np.all(np.diff(kept) > 0)  # distinct rows, in file order
    assert np.array_equal(first.x.numpy(), x[kept])  # rows stay paired with their labels
    other = load_data(ref, max_samples=7, subset_seed=1)
    assert not torch.equal(other.y, first.y)
    assert first.sha256 != load_data(ref).sha256


@pytest.mark.parametrize("max_samples", [50, 51, 1000])
def test_max_samples_at_least_n_keeps_all(tmp_path, max_samples):
    x = np.random.default_rng(4).standard_normal((50, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(50))
    full, capped = load_data(str(tmp_path / "d.npz")), load_data(str(tmp_path / "d.npz"), max_samples=max_samples)
    assert len(capped) == 50
    assert torch.equal(full.x, capped.x) and torch.equal(full.y, capped.y) and full.sha256 == capped.sha256


def test_max_samples_below_one_is_refused(tmp_path):
    x, y = arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "d.npz"), max_samples=0)
    assert "--max-samples" in one_line(exc)


# -- losses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_auto_loss_is_cross_entropy_for_integer_targets(dtype):
    assert resolve_loss("auto", torch.zeros(3, dtype=dtype)) == "cross_entropy"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_auto_loss_is_mse_for_float_targets(dtype):
    assert resolve_loss("auto", torch.zeros(3, dtype=dtype)) == "mse"


def test_unknown_loss_and_bool_targets_give_one_line_errors():
    with pytest.raises(LandscapeError) as exc:
        resolve_loss("hinge", torch.zeros(3))
    one_line(exc)
    with pytest.raises(LandscapeError) as exc:
        resolve_loss("auto", torch.zeros(3, dtype=torch.bool))
    one_line(exc)


def dataset(x: torch.Tensor, y: torch.Tensor) -> DataSet:
    return DataSet(x, y, "test", tensor_sha256(x, y), len(x))


def fixed_linear(d: int, out: int, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    model = nn.Linear(d, out)
    with torch.no_grad():
        model.weight.normal_()
        model.bias.normal_()
    return model


@pytest.mark.parametrize("batch_size", [None, 1, 3, 4, 10, 100])
def test_classification_metrics_equal_hand_computed_mean_loss_and_accuracy(batch_size):
    model = fixed_linear(3, 4, seed=0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 3)).astype(np.float32)
    y = rng.integers(0, 4, size=10)
    w, b = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    logits = x.astype(np.float64) @ w.T + b
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected_loss = -log_softmax[np.arange(10), y].mean()
    expected_acc = 100.0 * np.mean(logits.argmax(axis=1) == y)
    assert 0 < expected_acc < 100  # a meaningful check, neither all right nor all wrong

    problem = Problem(model, dataset(torch.from_numpy(x), torch.from_numpy(y)), device="cpu", batch_size=batch_size)
    assert problem.loss_name == "cross_entropy"
    metrics = problem.metrics()
    assert metrics.loss == pytest.approx(expected_loss, rel=1e-5)
    assert metrics.acc == pytest.approx(expected_acc)


@pytest.mark.parametrize("batch_size", [None, 1, 3, 7])
@pytest.mark.parametrize("outputs,target_shape", [(1, (10, 1)), (1, (10,)), (2, (10, 2))])
def test_regression_metrics_equal_hand_computed_mean_squared_error(batch_size, outputs, target_shape):
    model = fixed_linear(3, outputs, seed=1)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((10, 3)).astype(np.float32)
    y = rng.standard_normal(target_shape).astype(np.float32)
    w, b = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    prediction = x.astype(np.float64) @ w.T + b
    expected = np.mean((prediction - y.reshape(prediction.shape)) ** 2)  # torch.nn.MSELoss()

    problem = Problem(model, dataset(torch.from_numpy(x), torch.from_numpy(y)), device="cpu", batch_size=batch_size)
    problem.check_output()
    metrics = problem.metrics()
    assert problem.loss_name == "mse" and metrics.acc is None
    assert metrics.loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_problem_never_modifies_the_users_module(dtype):
    model = zoo.tiny_mlp().to(dtype)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    x, y = torch.randn(9, 4), torch.randn(9, 1)
    problem = Problem(model, dataset(x, y), device="cpu", copy_model=True)
    problem.check_output()
    problem.metrics()
    with torch.no_grad():  # the engine writes its copy's weights in place
        for parameter in problem.model.parameters():
            parameter.add_(1.0)
    problem.metrics()
    assert problem.model is not model
    assert model.training is True
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
        assert value.dtype == dtype and value.device.type == "cpu"
    assert problem.dtype == dtype


def test_batchnorm_model_is_evaluated_with_running_statistics():
    torch.manual_seed(2)
    model = zoo.tiny_cnn(channels=4, classes=3)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics far from (0, 1)
            model(torch.randn(16, 1, 6, 6) * 3 + 1)
    running = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    x = torch.randn(20, 1, 6, 6)
    y = torch.randint(0, 3, (20,))

    with torch.no_grad():
        eval_logits = model.eval()(x)
        batch_logits = model.train()(x)  # batch statistics: a different number
    # The train-mode call above moved the running stats; put them back.
    model.load_state_dict({**model.state_dict(), **running})
    expected = nn.functional.cross_entropy(eval_logits, y).item()
    assert abs(nn.functional.cross_entropy(batch_logits, y).item() - expected) > 1e-3

    for batch_size in (None, 6):
        problem = Problem(model, dataset(x, y), device="cpu", batch_size=batch_size)
        metrics = problem.metrics()
        assert metrics.loss == pytest.approx(expected, rel=1e-5)
        assert metrics.acc == pytest.approx(100.0 * (eval_logits.argmax(1) == y).double().mean().item())
    assert model.training is True
    for key, value in running.items():  # evaluating never updated the user's statistics
        assert torch.equal(model.state_dict()[key], value), key


def test_model_that_cannot_take_the_inputs_gives_one_line_error():
    x, y = torch.randn(8, 5), torch.randn(8, 1)
    problem = Problem(zoo.linear(d=3), dataset(x, y), device="cpu")
    with pytest.raises(LandscapeError) as exc:
        problem.check_output()
    assert "(5,)" in one_line(exc)


def test_too_few_classes_for_the_labels_gives_one_line_error():
    x, y = torch.randn(8, 3), torch.tensor([0, 1, 2, 4, 0, 1, 2, 3])
    problem = Problem(zoo.linear(d=3, out=3), dataset(x, y), device="cpu")
    with pytest.raises(LandscapeError) as exc:
        problem.check_output()
    assert "labels go up to 4" in one_line(exc) and "3 outputs" in str(exc.value)


def test_negative_labels_give_one_line_error():
    x, y = torch.randn(4, 3), torch.tensor([0, -1, 1, 2])
    problem = Problem(zoo.linear(d=3, out=3), dataset(x, y), device="cpu")
    with pytest.raises(LandscapeError) as exc:
        problem.check_output()
    one_line(exc)


def test_regression_output_shape_mismatch_gives_one_line_error():
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    problem = Problem(zoo.linear(d=3, out=2), dataset(x, y), device="cpu")
    with pytest.raises(LandscapeError) as exc:
        problem.check_output()
    one_line(exc)


def test_cross_entropy_on_float_targets_gives_one_line_error():
    x, y = torch.randn(8, 3), torch.randn(8)
    with pytest.raises(LandscapeError) as exc:
        Problem(zoo.linear(d=3, out=2), dataset(x, y), loss="cross_entropy", device="cpu")
    assert "--loss mse" in one_line(exc)


def test_sample_data_loads_by_name():
    data = load_data("sample:sine")
    assert data.x.shape[0] == data.y.shape[0] == data.total_samples
    assert load_data("sample:sine").sha256 == data.sha256
    with pytest.raises(LandscapeError) as exc:
        load_data("sample:no-such-set")
    assert "sine" in one_line(exc)


# -- bad data: one line that says where ------------------------------------------------------------


def test_nan_in_x_names_the_array_the_count_and_the_first_sample(tmp_path):
    x = np.random.default_rng(7).standard_normal((30, 2)).astype(np.float32)
    x[17, 1], x[20, 0], x[21, 1] = np.nan, np.inf, -np.inf
    np.savez(tmp_path / "data.npz", x=x, y=np.zeros(30, dtype=np.int64))
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "data.npz"))
    assert one_line(exc) == (f"{tmp_path / 'data.npz'}: x holds 3 NaN/inf values (first in sample 17); "
                             "clean the data or drop those samples")


def test_nonfinite_targets_in_streamed_sources_are_found_while_hashing(tmp_path):
    x, y = arrays()
    bad_y = y.astype(np.float32)
    bad_y[5] = np.inf
    with h5py.File(tmp_path / "bad.h5", "w") as handle:
        handle["x"], handle["y"] = x, bad_y
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "bad.h5"))
    assert "y holds 1 NaN/inf values (first in sample 5)" in one_line(exc)
    (tmp_path / "nan_items.py").write_text(USER_CODE + textwrap.dedent(
        """
        class _Nan(_Items):
            def __getitem__(self, i):
                x, y = super().__getitem__(i)
                return (x * float("nan") if i == 9 else x), y

        def nan_dataset():
            return _Nan()
        """))
    with pytest.raises(LandscapeError) as exc:
        load_data(f"{tmp_path / 'nan_items.py'}:nan_dataset")
    assert f"x holds {D} NaN/inf values (first in sample 9)" in one_line(exc)


def test_nan_sample_numbers_count_in_the_source_when_a_subset_is_taken(tmp_path):
    x = np.random.default_rng(8).standard_normal((50, 2)).astype(np.float32)
    x[:, 0] = np.nan  # every sample: the first one kept is the subset's smallest index
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(50, dtype=np.int64))
    keep = torch.randperm(50, generator=torch.Generator().manual_seed(0))[:7].sort().values
    with pytest.raises(LandscapeError) as exc:
        load_data(str(tmp_path / "d.npz"), max_samples=7)
    assert f"x holds 7 NaN/inf values (first in sample {int(keep[0])})" in one_line(exc)


def test_negative_label_is_named_as_such():
    x, y = torch.randn(4, 3), torch.tensor([0, -1, 1, 2])
    problem = Problem(zoo.linear(d=3, out=3), dataset(x, y), device="cpu")
    with pytest.raises(LandscapeError) as exc:
        problem.check_output()
    assert "negative label -1" in one_line(exc) and "labels go up to" not in str(exc.value)


def test_label_equal_to_the_number_of_outputs_names_the_valid_range(tmp_path):
    x, y = arrays()
    y[4] = 3
    with h5py.File(tmp_path / "d.h5", "w") as handle:  # the label range comes from load_data's pass
        handle["x"], handle["y"] = x, y
    problem = Problem(zoo.linear(d=3, out=3), load_data(str(tmp_path / "d.h5")), device="cpu", memory_budget=100)
    assert problem.streamed
    with pytest.raises(LandscapeError) as exc:
        problem.check_output()
    assert "labels go up to 3 but the model gives 3 outputs (labels 0..2)" in one_line(exc)
