"""CSV for people who open it in a spreadsheet: no cell runs as a formula, no name breaks a row.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, so a file named
``=HYPERLINK(...).wav`` would run when its predictions are opened: such text cells get a leading ``'``
(the spreadsheet convention for "this is text"). A file name may also hold a newline or a tab; quoted
CSV keeps it valid, but every line-based tool (``wc -l``, ``grep``, ``sort``) would split the row, so
control characters are written as ``\\n``, ``\\t``, ``\\xNN`` instead. Numbers are left as they are.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Iterable, Mapping, Sequence

from lancet.core.atomic import atomic_path
from lancet.core.errors import printable

#: First characters a spreadsheet treats as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@")


def safe_cell(value: Any) -> Any:
    """A CSV cell that stays one line and text: control characters escaped, formulas defused.

    Example:
        >>> safe_cell("=1+2.wav"), safe_cell("a\\nb.wav"), safe_cell(-0.5), safe_cell("neutral")
        ("'=1+2.wav", 'a\\\\nb.wav', -0.5, 'neutral')
    """
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_safe_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write ``rows`` under ``header`` atomically, every cell through :func:`safe_cell`."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([safe_cell(h) for h in header])
            for row in rows:
                writer.writerow([safe_cell(v) for v in row])


def save_safe_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Rows of dicts as :func:`write_safe_csv` writes them, columns in ``fieldnames`` order (missing cells
    empty, other keys left out): the reports a person opens (metrics, summaries, learning curves)."""
    names = list(fieldnames)
    write_safe_csv(path, names, ([row.get(name, "") for name in names] for row in rows))
