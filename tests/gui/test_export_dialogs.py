"""Export Figure and Export Grid as the menu runs them: real dialogs on the real window, real files.

The modal dialogs are answered from a timer, as a user would answer them: fields set, buttons pressed.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from landscape_gui.dialogs.export_dialogs import (
    GRID_FORMATS,
    ExportFigureDialog,
    SaveChooser,
    ask_export_figure,
    ask_export_grid,
    figure_views,
    typed_path,
    with_suffix,
)

SVG = "{http://www.w3.org/2000/svg}"


def answer_next(kind, answer) -> list:
    """Call ``answer(dialog)`` on the next modal dialog of ``kind``; returns the dialogs answered."""
    answered: list = []

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, kind):
            QTimer.singleShot(20, look)
            return
        answered.append(dialog)
        answer(dialog)

    QTimer.singleShot(0, look)
    return answered


def distinct_colors(image: QImage) -> int:
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    pixels = np.frombuffer(rgba.constBits(), np.uint8).reshape(rgba.height(), rgba.width(), 4)[..., :3]
    return len(np.unique(pixels.reshape(-1, 3), axis=0))


def press_export(dialog: ExportFigureDialog) -> None:
    """Press Export as the user does."""
    QTest.mouseClick(dialog.export_button(), Qt.MouseButton.LeftButton)


# -- names that follow the format -----------------------------------------------------------------
def test_names_follow_the_format():
    known = [".png", ".svg"]
    assert typed_path("fig_svg", ".svg", known) == Path("fig_svg.svg")  # the reported case
    assert typed_path("run.v2", ".png", known) == Path("run.v2.png")
    assert typed_path("a/b.png", ".svg", known) == Path("a/b.png")  # a typed format is what the user meant
    assert with_suffix("a/b.png", ".svg", known) == Path("a/b.svg")
    assert with_suffix("a/b", ".svg", known) == Path("a/b.svg")


def test_save_chooser_renames_with_the_filter_and_gives_a_bare_name_its_suffix(qtbot, tmp_path):
    chooser = SaveChooser(None, "Export grid", GRID_FORMATS, tmp_path, "surface", ".h5")
    qtbot.addWidget(chooser)
    chooser.open()
    assert chooser.selectedFiles() == [str(tmp_path / "surface.h5")]  # the name matches the filter shown
    chooser.selectNameFilter("CSV table (*.csv)")
    assert chooser.suffix() == ".csv" and chooser.selectedFiles() == [str(tmp_path / "surface.csv")]
    chooser.selectFile("fig_svg")
    with qtbot.waitSignal(chooser.accepted, timeout=2000):
        chooser.accept()
    assert chooser.chosen_path() == tmp_path / "fig_svg.csv"


# -- Export Grid ----------------------------------------------------------------------------------
def test_export_grid_starts_in_the_last_folder_and_writes_the_chosen_format(window, affine_surface, tmp_path):
    window.open_grid(affine_surface)
    exports = tmp_path / "exports"
    exports.mkdir()
    window.settings.set_last_folder("exports", exports)

    def as_csv(chooser: SaveChooser) -> None:
        assert Path(chooser.directory().absolutePath()) == exports
        assert chooser.selectedFiles() == [str(exports / "affine.h5")]  # HDF5 filter, HDF5 name
        chooser.selectNameFilter("CSV table (*.csv)")
        chooser.selectFile("grid")  # typed without a suffix
        chooser.accept()

    answered = answer_next(SaveChooser, as_csv)
    out = ask_export_grid(window)
    assert answered and out == exports / "grid.csv"
    assert len(list(csv.DictReader(out.open()))) == 41 * 33 and not window.errors

    def look_and_cancel(chooser: SaveChooser) -> None:  # next time: the format used last, its name
        assert chooser.selectedFiles() == [str(exports / "affine.csv")]
        chooser.reject()

    answered = answer_next(SaveChooser, look_and_cancel)
    assert ask_export_grid(window) is None and answered


def test_export_grid_without_a_surface_says_so(window):
    assert ask_export_grid(window) is None
    assert window.errors and "open a surface" in window.errors[-1][0]


# -- Export Figure --------------------------------------------------------------------------------
def test_export_figure_dialog_offers_the_views_on_screen_with_the_surface_name(window, affine_surface, tmp_path):
    window.open_grid(affine_surface)
    window.settings.set_last_folder("figures", tmp_path)
    dialog = ExportFigureDialog(figure_views(window), window.settings, parent=window)
    assert dialog.include_map.isChecked() and dialog.include_profile.isChecked()
    assert not dialog.include_compare.isEnabled()  # the Compare tab is not shown
    assert dialog.include_3d.isEnabled() == window.surface3d.available
    assert dialog.title_edit.text() == window.state.current.name
    assert Path(dialog.path_edit.text()) == tmp_path / "affine.png"
    assert (dialog.unit.currentData(), dialog.width_box.value(), dialog.height_box.value(), dialog.dpi.value()) == \
        ("in", 7.0, 5.0, 300)
    assert dialog.pixel_size() == (2100, 1500) and "2100 × 1500 pixels" in dialog.size_note.text()
    dialog.format.setCurrentIndex(dialog.format.findData(".svg"))
    assert Path(dialog.path_edit.text()) == tmp_path / "affine.svg"  # the name follows the format
    dialog.set_path(tmp_path / "fig_svg")
    assert dialog.path() == tmp_path / "fig_svg.svg"
    dialog.set_path(tmp_path / "back.png")
    assert dialog.suffix() == ".png"  # and a typed format picks the format
    dialog.unit.setCurrentIndex(dialog.unit.findData("px"))
    assert dialog.pixel_size() == (2100, 1500)  # switching units keeps the size
    for box in (dialog.include_map, dialog.include_profile, dialog.include_3d):
        box.setChecked(False)
    assert not dialog.export_button().isEnabled() and "at least one view" in dialog.error.text()


def test_export_figure_png_is_map_and_profile_under_the_title_at_the_size_and_dpi_asked(
        window, affine_surface, tmp_path):
    window.open_grid(affine_surface)

    def fill(dialog: ExportFigureDialog) -> None:
        dialog.include_3d.setChecked(False)
        dialog.title_edit.setText("Affine test surface")
        dialog.set_size(3, 2, "in", dpi=200)
        dialog.set_path(tmp_path / "paper")
        press_export(dialog)

    answered = answer_next(ExportFigureDialog, fill)
    out = ask_export_figure(window)
    assert answered and out == tmp_path / "paper.png"
    image = QImage(str(out))
    assert image.size().toTuple() == (600, 400)
    assert image.dotsPerMeterX() == round(200 / 0.0254)
    figure = answered[0].figure()
    assert [len(r) for r in figure.rows] == [1, 1] and figure.title == "Affine test surface"
    assert distinct_colors(image.copy(0, 40, 600, 200)) > 30  # the map's colours, under the title
    assert window.settings.last_folder("figures") == str(tmp_path)

    def look(dialog: ExportFigureDialog) -> None:  # remembered for the next figure
        assert (dialog.unit.currentData(), dialog.width_box.value(), dialog.dpi.value()) == ("in", 3.0, 200)
        assert Path(dialog.path_edit.text()).parent == tmp_path
        dialog.reject()

    answered = answer_next(ExportFigureDialog, look)
    assert ask_export_figure(window) is None and answered


def test_export_figure_svg_has_the_title_and_vector_views(window, affine_surface, tmp_path):
    window.open_grid(affine_surface)

    def fill(dialog: ExportFigureDialog) -> None:
        dialog.include_3d.setChecked(False)
        dialog.set_size(800, 600, "px", dpi=96)
        dialog.format.setCurrentIndex(dialog.format.findData(".svg"))
        dialog.set_path(tmp_path / "fig_svg")
        press_export(dialog)

    answer_next(ExportFigureDialog, fill)
    out = ask_export_figure(window)
    assert out == tmp_path / "fig_svg.svg"
    root = ET.parse(out).getroot()
    assert root.get("viewBox") == "0 0 800 600" and root.get("width") == f"{800 / 96:.4f}in"
    assert root.find(f"{SVG}text").text == window.state.current.name
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids))
    assert set(re.findall(r"url\(#([^)]+)\)", out.read_text())) <= set(ids)
    assert len([g for g in root.findall(f"{SVG}g") if g.get("transform", "").startswith("translate")]) == 2


def test_export_figure_of_the_compare_tab_holds_its_panels(window, affine_surface, tmp_path):
    window.open_grid(affine_surface)
    window.tabs.setCurrentWidget(window.compare)
    dialog = ExportFigureDialog(figure_views(window), window.settings, parent=window)
    assert dialog.include_compare.isEnabled() and dialog.include_compare.isChecked()
    assert not dialog.include_map.isChecked() and not dialog.include_3d.isEnabled()
    assert dialog.figure().rows == ((window.compare,),)


def test_export_figure_error_stays_in_the_dialog(window, affine_surface, tmp_path):
    window.open_grid(affine_surface)
    dialog = ExportFigureDialog(figure_views(window), window.settings, parent=window)
    dialog.show()
    dialog.set_size(300, 200, "px", dpi=96)
    dialog.set_path(tmp_path / "missing-folder" / "figure.png")
    assert dialog.export() is None
    assert dialog.isVisible() and "could not write" in dialog.error.text() and dialog.error.kind == "error"


@pytest.mark.parametrize("unit", ["in", "px"])
def test_figure_size_fields_give_exact_pixels(window, unit):
    dialog = ExportFigureDialog(figure_views(window), window.settings, parent=window)
    width, height = (3.5, 2.25) if unit == "in" else (1050, 675)
    dialog.set_size(width, height, unit, dpi=300)
    assert dialog.pixel_size() == (1050, 675)
