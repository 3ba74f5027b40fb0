"""One error type for problems the user can fix, and the wrapper that prints it as one line."""

from __future__ import annotations

import argparse
import errno
import sys
import textwrap
from typing import Callable


class LancetError(Exception):
    """Bad input or configuration. The message is one line that names the file and what is wrong."""


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` on one line: control characters (a newline or tab in a file name) written as ``\\n``,
    ``\\t``, ``\\xNN``, so that a name from the disk can never split a one-line message or a table row.

    Example:
        >>> printable("a\\nb\\tc.wav")
        'a\\\\nb\\\\tc.wav'
    """
    return "".join(_ESCAPES.get(ch, f"\\x{ord(ch):02x}") if ord(ch) < 32 or ord(ch) == 127 else ch
                   for ch in text)


# Errors of the machine rather than of the program: read-only or foreign folders, a full disk, I/O failures.
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO,
                      errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EFBIG, errno.EMFILE, errno.ENFILE,
                      errno.EEXIST}


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError of the machine: the path, what happened, and what to do about it.

    Example:
        >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device", "out/a.wav"))
        'out/a.wav: No space left on device (the disk is full: free some space or choose another output folder, then rerun the same command to resume)'
    """
    where = "" if exc.filename is None else f"{exc.filename}: "
    what = exc.strerror or str(exc)
    if exc.filename2 is not None:  # copy, link, rename: the second path is the one being written
        where, what = f"{exc.filename2}: ", f"{what} (from {exc.filename})"
    hint = ""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = " (the folder is read-only or not yours: choose a writable output folder)"
    elif exc.errno in (errno.EEXIST, errno.ENOTDIR):
        hint = " (a file stands where a folder is needed: choose another output folder)"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = (" (the disk is full: free some space or choose another output folder, "
                "then rerun the same command to resume)")
    return f"{where}{what}{hint}"


def machine_error(exc: BaseException) -> str | None:
    """The one line for an error of the machine (see :data:`ENVIRONMENT_ERRNOS`) or of a sound file, looked
    for in ``exc`` and its causes (a worker pool wraps a worker's error), or None for anything else."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in ENVIRONMENT_ERRNOS:
            return describe_os_error(seen)
        if type(seen).__module__.startswith("soundfile"):  # LibsndfileError: 'System error.' on a full disk
            first = str(seen).splitlines()[0] if str(seen) else type(seen).__name__
            return f"{first} (sound file; is the disk full or the folder read-only?)"
        seen = seen.__cause__
    return None


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main`` and print problems the user can fix as one line, never a traceback.

    A :class:`LancetError` (bad input or settings) prints ``error: ...`` and exits 2; an OSError of the
    machine (read-only folder, full disk, see :data:`ENVIRONMENT_ERRNOS`) or a soundfile error prints
    ``error: <path>: ...`` and exits 1. Real bugs still raise normally.
    """
    try:
        code = main()
    except LancetError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume where it stopped", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        line = machine_error(exc)
        if line is None:
            raise
        print(f"error: {printable(line)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: ...)`` to a flag's help unless the help already says its default or there is none."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        # argparse wraps at hyphens too, which cuts a flag named in the help ("--no-" / "progress")
        return textwrap.wrap(self._whitespace_matcher.sub(" ", text).strip(), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)
