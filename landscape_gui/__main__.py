"""``python -m landscape_gui [FILES]``: the desktop app."""

from landscape_gui.app import main

raise SystemExit(main())
