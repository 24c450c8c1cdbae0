"""The one exception type users see.

Anything that is the user's input being wrong (a file, a flag, a model that does
not fit) raises :class:`LandscapeError` with a one-line message that says what to
do. The CLI prints it without a traceback; the GUI shows it in a dialog.
"""


class LandscapeError(Exception):
    """A user-facing error whose message is one line that says what to do."""
