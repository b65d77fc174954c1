"""User errors of the command line: reported as one line, without a traceback, with argparse's exit status."""

from __future__ import annotations

USAGE_ERROR_EXIT_STATUS = 2  # argparse's, for a command line that cannot be run as given


class UsageError(Exception):
    """What the user asked for cannot be done as asked (an invalid config, an output folder in use...).

    `scenetext` prints it as `scenetext <command>: error: <message>` and exits with status 2.
    """
