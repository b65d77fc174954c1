"""How the command line reports failures: a user's mistake as one line with exit status 2, anything else as
one line with a hint, and exit status 1 (the traceback only with `--debug` or SCENETEXT_DEBUG=1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

USAGE_ERROR_EXIT_STATUS = 2  # argparse's, for a command line that cannot be run as given
INTERNAL_ERROR_EXIT_STATUS = 1

# What the library raises when the user's inputs are wrong: a missing input, an output folder in use, a value
# or a type its validation refused (a config key, a model folder of the wrong type...).
USER_MISTAKES = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    ValueError,
    TypeError,
)


class UsageError(Exception):
    """What the user asked for cannot be done as asked (an invalid config, an output folder in use...).

    `scenetext` prints it as `scenetext <command>: error: <message>` and exits with status 2.
    """


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (an OSError as `<file>: <reason>`, without its errno)."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


@contextmanager
def user_mistakes() -> Iterator[None]:
    """Inside, `USER_MISTAKES` are the user's and become a `UsageError`. Wrap where a command reads and
    checks its inputs, not where it computes: a ValueError there is a bug, reported as one."""
    try:
        yield
    except USER_MISTAKES as error:
        raise UsageError(one_line(error)) from error
