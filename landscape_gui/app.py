"""Start the desktop app: ``landscape-gui [FILES...] [--screenshot PNG]``.

With no files it opens on the built-in sample: the mlp-sine recipe is trained
once into a cache folder (landscape_gui.first_run), then its surface is computed in the
background and fills in on screen, coarse first. A finished sample is reopened
at once on later launches.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.errors import LandscapeError

DEFAULT_SIZE = (1500, 950)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="landscape-gui", description="See the loss landscape around checkpoints.")
    parser.add_argument("files", nargs="*", help="surface files (.h5) and/or checkpoints to open")
    parser.add_argument("--screenshot", metavar="PNG", help="render the window with FILES to PNG and exit")
    parser.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", metavar="WxH",
                        help="window size, for --screenshot (default %(default)s)")
    parser.add_argument("--no-sample", action="store_true", help="start empty instead of on the built-in sample")
    parser.add_argument("--settings", metavar="INI", help="settings file to use instead of the user's")
    return parser.parse_args(argv)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LandscapeError(f"--size {text}: write it as WIDTHxHEIGHT, for example 1500x950") from None
    if width < 200 or height < 150:
        raise LandscapeError(f"--size {text} is too small; use at least 200x150")
    return width, height


def make_app():
    """The QApplication (created once), with pyqtgraph configured before any view exists."""
    from PySide6.QtWidgets import QApplication

    from landscape_gui.figure_export import use_in_context_menus

    app = QApplication.instance() or QApplication(sys.argv[:1])
    use_in_context_menus()
    app.setApplicationName("Landscape")
    app.setOrganizationName("Landscape")
    return app


def build_window(files: list[str], settings_path: str | None = None):
    from PySide6.QtCore import QSettings

    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    settings = AppSettings(QSettings(settings_path, QSettings.IniFormat)) if settings_path else AppSettings()
    window = MainWindow(settings=settings)
    if files:
        window.open_paths(files)
    return window


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        size = parse_size(args.size)
        missing = [f for f in args.files if not Path(f).exists()]
        if missing:
            raise LandscapeError(f"no such file: {missing[0]}")
        check_display(args.screenshot is not None)
    except LandscapeError as exc:
        print(f"landscape-gui: error: {exc}", file=sys.stderr)
        return 2
    app = make_app()
    window = build_window(args.files, args.settings)
    if not args.files and not window.restore_session() and not args.no_sample:
        from landscape_gui.first_launch import start_sample

        start_sample(window)
    if args.screenshot:
        return screenshot(app, window, args.screenshot, size)
    install_error_hook(window)
    window.show()
    return app.exec()


def install_error_hook(window) -> None:
    """A bug in a slot becomes the window's error dialog (one line, details), not a console traceback."""
    import traceback

    from engine.io.references import one_line

    def hook(kind, value, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        message = str(value) if isinstance(value, LandscapeError) else f"{kind.__name__}: {value}"
        window.show_error(one_line(Exception(message)), "".join(traceback.format_exception(kind, value, tb)))

    sys.excepthook = hook


def check_display(screenshot: bool) -> None:
    """Fail with one line (not Qt's abort) when there is no screen; a screenshot needs none."""
    if os.environ.get("QT_QPA_PLATFORM") or sys.platform != "linux":
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if screenshot:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # rendering to a file needs no screen
        return
    raise LandscapeError(
        "no display found (DISPLAY is not set): run landscape-gui on a desktop, under xvfb-run, or use "
        "'landscape-gui --screenshot out.png FILES'; on a server, the 'landscape' CLI writes files the app opens later"
    )


def screenshot(app, window, path: str, size: tuple[int, int]) -> int:
    """Show the window at ``size``, let it paint (and any job finish), save a PNG, exit."""
    from PySide6.QtCore import QElapsedTimer, QSize, QThread

    window.resize(QSize(*size))
    window.show()
    timer = QElapsedTimer()
    timer.start()
    while window.busy and timer.elapsed() < 300_000:
        app.processEvents()
        QThread.msleep(20)
    for _ in range(5):
        app.processEvents()
    try:
        out = window.screenshot(path, QSize(*size))
    except LandscapeError as exc:
        print(f"landscape-gui: error: {exc}", file=sys.stderr)
        return 2
    for message, _details in window.errors:
        print(f"landscape-gui: error: {message}", file=sys.stderr)
    print(f"wrote {out}")
    window.close()
    return 1 if window.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
