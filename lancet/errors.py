"""One error type for problems the user can fix, and the wrapper that prints it as one line."""

from __future__ import annotations

import sys
from typing import Callable


class LancetError(Exception):
    """Bad input or configuration. The message is one line that names the file and what is wrong."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main`` and turn a :class:`LancetError` into ``error: ...`` and exit status 2.

    Scripts never show a traceback for bad input; real bugs still raise normally.
    """
    try:
        code = main()
    except LancetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume where it stopped", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
