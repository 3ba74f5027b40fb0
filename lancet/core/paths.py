"""Paths built from data (utterance ids, condition names) never leave their output folder.

Ids and condition names come from label files and manifests, which anyone can edit: a name such as
``Ses01F_x/../../victim`` must neither read nor write outside the folders a step was given. Every
path a step builds from such a name goes through :func:`safe_component` (the name itself) and
:func:`inside` (the finished path), which raise :class:`lancet.core.errors.LancetError` with one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from lancet.core.errors import LancetError

# Characters never allowed in a name that becomes a file name: separators (both systems'), control characters.
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")


def is_safe_component(name: str) -> bool:
    """True when ``name`` is one plain file-name component: no separator or control character, no leading dot
    (so neither ``.`` nor ``..``), no surrounding spaces, at most 200 characters.

    Example:
        >>> is_safe_component("Ses01F_impro01_F000"), is_safe_component("a/../b"), is_safe_component("..")
        (True, False, False)
    """
    return (bool(name) and len(name) <= 200 and _FORBIDDEN.search(name) is None and not name.startswith(".")
            and name == name.strip())


def safe_component(name: str, what: str = "name") -> str:
    """Return ``name`` if :func:`is_safe_component`, else raise a one-line LancetError naming it."""
    if not isinstance(name, str) or not is_safe_component(name):
        raise LancetError(f"unsafe {what} {str(name)[:80]!r}: it must be one file name "
                          f"(no path separators or control characters, no '..' or leading dot)")
    return name


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Return ``path`` if it lies inside ``root`` (after resolving ``..`` and symbolic links), else raise.

    The last component is not followed: a symbolic link *in* the folder (``--mode symlink``) is replaced
    by an atomic rename, never written through, so only the folder holding it must be inside ``root``.

    Example:
        >>> str(inside("/data/out", "/data/out/clean/a.wav"))
        '/data/out/clean/a.wav'
        >>> inside("/data/out", "/data/out/clean/../../etc/passwd")
        Traceback (most recent call last):
        lancet.core.errors.LancetError: /data/out/clean/../../etc/passwd: lies outside the output folder /data/out; refused
    """
    root_r = Path(root).resolve()
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise LancetError(f"{p}: not a file name inside {root_r}; refused")
    resolved = p.parent.resolve() / p.name
    if resolved != root_r and root_r not in resolved.parents:
        raise LancetError(f"{p}: lies outside the output folder {root_r}; refused")
    return p


def lies_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies below it, both resolved (``..`` and symbolic links followed).

    Example:
        >>> lies_within("/data/IEMOCAP/Session1/../aug", "/data/IEMOCAP"), lies_within("/data/aug", "/data/IEMOCAP")
        (True, False)
    """
    inner, outer = Path(path).resolve(), Path(folder).resolve()
    return inner == outer or outer in inner.parents


def check_outside(out: str | os.PathLike, flag: str, inputs: Iterable[tuple[str, str | os.PathLike | None]]) -> None:
    """Refuse an output folder that is, or lies inside, one of a step's input folders (a corpus, its audio,
    noise recordings, a feature store): inputs are only ever read, and outputs written among them would be
    read back as input by the next run. ``inputs``: (what it is, folder) pairs; None folders are skipped.

    Example:
        >>> check_outside("/data/IEMOCAP/aug", "--out", [("the original corpus folder", "/data/IEMOCAP")])
        Traceback (most recent call last):
        lancet.core.errors.LancetError: /data/IEMOCAP/aug: --out lies inside the original corpus folder /data/IEMOCAP, which is only ever read; choose another --out
    """
    for what, folder in inputs:
        if folder is not None and lies_within(out, folder):
            raise LancetError(f"{out}: {flag} lies inside {what} {Path(folder).resolve()}, which is only ever read; "
                              f"choose another {flag}")
