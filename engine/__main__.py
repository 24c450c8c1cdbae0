"""``python -m engine`` is the ``landscape`` command."""

import sys

from engine.cli import main

sys.exit(main())
