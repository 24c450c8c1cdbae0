"""The app's state objects are plain Python: no Qt needed to drive them (napari's model/view split)."""

from __future__ import annotations


import numpy as np
import pytest



def _surface(tmp_path, name: str, dims: int = 2):
    from engine.io.store import Surface, write_surface

    x = np.linspace(-1, 1, 5)
    y = np.linspace(-2, 2, 3) if dims == 2 else None
    shape = (3, 5) if dims == 2 else (5,)
    surface = Surface(path=tmp_path / "src.h5", format="landscape", x=x, y=y,
                      values={"train_loss": np.arange(np.prod(shape), dtype=float).reshape(shape) + 1},
                      done=np.ones(shape, bool), attrs={})
    return write_surface(tmp_path / name, surface)


def test_view_state_emits_only_real_changes_and_validates(tmp_path):
    from landscape_gui.state import ViewState

    view = ViewState()
    seen = []
    view.changed.connect(seen.append)
    view.colormap = "magma"
    view.colormap = "magma"
    view.percentile_high = 120  # clamped to 100: a change from the default 99 ...
    view.percentile_high = 100  # ... and then none
    with pytest.raises(AttributeError, match="no setting 'clip_percentile'"):
        view.clip_percentile = 95  # a setting 0.1 had: refused, not silently ignored
    view.slice = ((0, 0), (1, 1))
    assert seen == ["colormap", "percentile_high", "slice"] and view.slice == ((0.0, 0.0), (1.0, 1.0))
    with pytest.raises(ValueError):
        view.scale = "sqrt"
    with pytest.raises(AttributeError):
        view.set("nonsense", 1)


def test_app_state_open_current_compare_and_close(tmp_path):
    from landscape_gui.state import AppState, Landscape, default_slice

    state = AppState()
    events = []
    state.opened.connect(lambda l: events.append(("opened", l.name)))
    state.current_changed.connect(lambda l: events.append(("current", l.name if l else None)))
    a = state.add(Landscape.open(_surface(tmp_path, "a.h5")))
    b = state.add(Landscape.open(_surface(tmp_path, "b.h5")))
    line = state.add(Landscape.open(_surface(tmp_path, "c.h5", dims=1)), make_current=False)
    assert state.current is b and state.compared == [a, b] and line not in state.compared
    assert state.view.slice == default_slice(b.surface) == ((-1.0, 0.0), (1.0, 0.0))
    again = state.add(Landscape.open(_surface(tmp_path, "a.h5")))
    assert again is a and len(state.landscapes) == 3  # the same file is not opened twice
    a.add_values(np.array([0, 14]), {"train_loss": np.array([7.0, 8.0])})
    assert a.surface.values["train_loss"][0, 0] == 7.0 and a.surface.values["train_loss"][2, 4] == 8.0
    state.remove(a)
    assert state.current is b and state.compared == [b]
    state.remove(b)
    assert state.current is line
    assert events[:2] == [("opened", "a"), ("current", "a")]
