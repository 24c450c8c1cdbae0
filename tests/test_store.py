"""The store: one writer per file, tensor groups with digests, logs, atomic creation, damaged files, full disks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from engine.errors import LandscapeError
from engine.io.store import (
    ArraySpec, GridWriter, Layout, LogSpec, WriterLock, append_log, check_space, create_file, grid_layout, open_h5,
    read_directions, read_log, read_surface, read_tensor_group, settings_of, tensor_digest, tensor_group_digests,
    writer_of,
)
from tests.conftest import ROOT, damaged_landscape_files, run_cli_env, writer_lock_held_elsewhere


def tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"0.weight": torch.randn(4, 3, generator=g), "0.bias": torch.randn(4, generator=g),
            "2.weight": torch.randn(1, 4, generator=g, dtype=torch.float64)}


# -- tensor groups ---------------------------------------------------------------------------------
def test_tensor_digest_is_a_function_of_names_and_values_only() -> None:
    a = tensors(0)
    assert tensor_digest(a) == tensor_digest(dict(reversed(list(a.items()))))  # order does not matter
    changed = {**a, "0.bias": a["0.bias"].clone()}
    changed["0.bias"][0] += 1e-7
    assert tensor_digest(changed) != tensor_digest(a)
    renamed = {("1.bias" if k == "0.bias" else k): v for k, v in a.items()}
    assert tensor_digest(renamed) != tensor_digest(a)
    assert tensor_digest({**a, "0.bias": a["0.bias"].double()}) != tensor_digest(a)  # dtype counts


def test_more_than_two_members_round_trip_with_their_digests(tmp_path: Path) -> None:
    members = {f"bend_{k}": tensors(k) for k in range(3)}
    path = create_file(tmp_path / "t.h5", Layout(kind="test", attrs={}, tensors={"bends": members}))
    back = read_tensor_group(path, "bends")
    assert list(back) == ["bend_0", "bend_1", "bend_2"]
    for name, group in members.items():
        assert set(back[name]) == set(group)
        for key, tensor in group.items():
            assert back[name][key].dtype == tensor.dtype and torch.equal(back[name][key], tensor)
    assert tensor_group_digests(path, "bends") == {name: tensor_digest(group) for name, group in members.items()}


def test_a_tensor_changed_on_disk_is_reported_as_damage(tmp_path: Path) -> None:
    path = create_file(tmp_path / "t.h5", Layout(kind="test", attrs={}, tensors={"directions": {"x": tensors(1)}}))
    with h5py.File(path, "r+") as handle:
        handle["directions/x/0.bias"][0] = 42.0
    with pytest.raises(LandscapeError, match=r"is damaged: the tensors in directions/x do not match"):
        read_tensor_group(path, "directions")


# -- logs -----------------------------------------------------------------------------------------
def test_a_log_appends_rows_and_reads_back_only_what_was_written(tmp_path: Path) -> None:
    path = create_file(tmp_path / "log.h5", Layout(kind="test", attrs={},
                                                   logs={"history": LogSpec(("epoch", "loss"), capacity=10)}))
    assert read_log(path, "history").rows.shape == (0, 2)
    with open_h5(path, "r+") as handle:
        assert append_log(handle, "history", [[1, 0.5], [2, 0.25]]) == 2
        assert append_log(handle, "history", [3, 0.125]) == 3
    table = read_log(path, "history")
    assert table.columns == ("epoch", "loss")
    np.testing.assert_array_equal(table.column("loss"), [0.5, 0.25, 0.125])
    with open_h5(path, "r+") as handle, pytest.raises(LandscapeError, match="holds 10 rows"):
        append_log(handle, "history", np.zeros((8, 2)))


# -- the grid writer ------------------------------------------------------------------------------
def test_grid_writer_writes_exactly_the_points_it_is_given(tmp_path: Path) -> None:
    x, y = np.linspace(-1, 1, 7), np.linspace(0, 1, 5)
    path = create_file(tmp_path / "g.h5", grid_layout(x=x, y=y, metrics=["loss"], directions=[tensors(0), tensors(1)],
                                                      attrs={}))
    writer = GridWriter(path, ["train_loss"])
    writer.put(np.array([34, 0, 8]), {"train_loss": np.array([3.0, 1.0, 2.0])})
    writer.put(np.array([20]), {"train_loss": np.array([np.inf])})
    assert read_surface(path).done.sum() == 0  # nothing before a flush
    writer.flush()
    surface = read_surface(path)
    flat_done = surface.done.ravel()
    assert set(np.flatnonzero(flat_done)) == {0, 8, 20, 34}
    np.testing.assert_array_equal(surface.values["train_loss"].ravel()[[0, 8, 20, 34]], [1.0, 2.0, np.inf, 3.0])
    assert np.isnan(surface.values["train_loss"].ravel()[~flat_done]).all()


# -- creation -------------------------------------------------------------------------------------
def test_create_is_atomic_and_refuses_what_the_disk_cannot_hold(tmp_path: Path) -> None:
    huge = Layout(kind="test", attrs={}, arrays={"v": ArraySpec((10**8, 10**8), np.float64, np.nan)})
    with pytest.raises(LandscapeError, match=r"huge.h5 needs 80000.0 TB but .* free") as info:
        create_file(tmp_path / "huge.h5", huge)
    assert "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == []
    check_space(tmp_path / "small.h5", 10)  # a small file fits


def test_damaged_landscape_files_give_one_line_errors(tmp_path: Path) -> None:
    for what, path in damaged_landscape_files(tmp_path).items():
        with pytest.raises(LandscapeError) as info:
            read_surface(path)
        assert str(info.value) == f"{path} is damaged: {what}"


# -- one writer per file ----------------------------------------------------------------------------
def test_a_second_writer_is_refused_with_the_holder_named_and_readers_are_not(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    path.write_bytes(b"")
    with WriterLock(path):
        with pytest.raises(LandscapeError, match=rf"{path} is being written by process {os.getpid()} on "):
            WriterLock(path).acquire()
        assert writer_of(path) is not None and str(os.getpid()) in writer_of(path)
        code = ("import sys; from engine.io.store import WriterLock\n"
                "try:\n    WriterLock(sys.argv[1]).acquire()\nexcept Exception as e:\n    print(e)\n")
        other = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, env=run_cli_env(),
                               capture_output=True, text=True, timeout=120)
        assert f"is being written by process {os.getpid()}" in other.stdout, other.stderr
    assert writer_of(path) is None
    WriterLock(path).acquire().release()  # free again after release


def test_info_names_the_process_writing_a_file(tmp_path: Path, regression_case, capsys) -> None:
    from engine.cli import main

    out = tmp_path / "s.h5"
    assert main(["surface", regression_case["checkpoint"], "--model", regression_case["model"], "--data",
                 regression_case["data"], "--x=-1:1:3", "--out", str(out)]) == 0
    with writer_lock_held_elsewhere(out) as pid:
        assert main(["info", str(out)]) == 0
        assert f"being written by process {pid}" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "being written" not in capsys.readouterr().out


def test_a_sigkilled_writer_leaves_no_lock_behind(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with writer_lock_held_elsewhere(path) as pid:
        assert f"process {pid}" in (writer_of(path) or "")
    assert writer_of(path) is None  # the holder was SIGKILLed: its lock went with it
    WriterLock(path).acquire().release()


# -- a full disk ----------------------------------------------------------------------------------------
FULL_DISK_RUN = textwrap.dedent("""
    import os, subprocess, sys
    folder, free_bytes, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    with open(os.path.join(folder, "filler"), "wb") as handle:  # leave about free_bytes free
        handle.write(b"\\0" * (os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize - free_bytes))
    result = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True)
    print(result.returncode)
    print(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
    print(" ".join(sorted(n for n in os.listdir(folder) if n != "filler")))
""")


def small_disk_available() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1M tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=1M tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not small_disk_available(), reason="needs a user and mount namespace for a 2 MB tmpfs")
def test_a_nearly_full_disk_is_one_line_and_leaves_nothing_behind(tmp_path: Path, regression_case) -> None:
    """HDF5 used to crash (SIGSEGV) creating a file on a nearly full disk, leaving .NAME.PID.tmp behind."""
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "run.py").write_text(FULL_DISK_RUN)
    outcomes = []
    for free in (0, 2_000, 8_000, 20_000, 40_000):
        args = ["surface", regression_case["checkpoint"], "--model", regression_case["model"], "--data",
                regression_case["data"], "--x=-1:1:41", "--y=-1:1:41", "--device", "cpu", "--out", str(disk / "s.h5")]
        script = (f"mount -t tmpfs -o size=2M tmpfs {disk} && {sys.executable} {tmp_path / 'run.py'} {disk} {free} "
                  + " ".join(f"'{a}'" for a in args))
        result = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, env=run_cli_env(),
                                capture_output=True, text=True, timeout=300)
        code, last, left = (result.stdout.splitlines() + ["", "", ""])[:3]
        outcomes.append((free, code, last, left))
    for free, code, last, left in outcomes:
        assert code in ("0", "2"), outcomes  # never a crash (139 was SIGSEGV)
        if code == "2":
            assert last.startswith("landscape: error: ") and ("disk" in last or "free" in last), outcomes
            assert ".tmp" not in left and "s.h5" not in left.split(), outcomes
    assert any(code == "2" for _, code, _, _ in outcomes), outcomes


def test_a_write_that_fails_is_one_line_and_leaves_no_temporary_file(tmp_path: Path, regression_case) -> None:
    """A file size limit (RLIMIT_FSIZE) makes every write past it fail, as a full disk does."""
    code = textwrap.dedent("""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from engine.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    out = tmp_path / "s.h5"
    args = ["surface", regression_case["checkpoint"], "--model", regression_case["model"], "--data",
            regression_case["data"], "--x=-1:1:41", "--y=-1:1:41", "--device", "cpu", "--out", str(out)]
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=run_cli_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"landscape: error: cannot write {out}")
    assert not out.exists() and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_settings_of_an_unreadable_file_names_no_flag_it_does_not_have(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a result file\n")
    with pytest.raises(LandscapeError) as info:
        settings_of(notes)
    assert "is not a readable HDF5 file" in str(info.value) and "--overwrite" not in str(info.value)


def test_directions_written_by_a_job_read_back_with_digests(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 3)
    path = create_file(tmp_path / "g.h5", grid_layout(x=x, y=x, metrics=["loss"], directions=[tensors(2), tensors(3)],
                                                      attrs={}))
    dx, dy = read_directions(path)
    assert torch.equal(dx["0.weight"], tensors(2)["0.weight"].float())
    assert dy["2.weight"].dtype == torch.float32  # directions are stored as float32 (format_version 1)
    assert set(tensor_group_digests(path, "directions")) == {"x", "y"}
