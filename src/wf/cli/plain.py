"""Human output written without importing rich, when it is plain text.

rich costs more to import than the rest of `wf instances list` together. When stdout is not a
terminal (a pipe, a file, a script), what rich writes for wf's tables and lines is plain text:
the same box characters, no colour. `Text`, `Table` and `Group` here record what views.py
builds (the calls rich's classes take); `Console.print` writes the plain text itself when the
output is one it can lay out exactly as rich does (ASCII text and wf's own status labels, lines
that fit the width, single-line table cells), and hands anything else to rich. The objects are
rich renderables too (`__rich__`), so that a terminal's console prints them in colour as before.
tests/test_cli_startup.py compares both outputs for the views' shapes.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# the characters of wf's labels beyond ASCII, and the cells rich gives each (tests/test_cli_startup.py)
WIDTHS = {
    "✅": 2,
    "❌": 2,
    "❓": 2,
    "⌛": 2,
    "⏰": 2,
    "🚫": 2,
    "🔄": 2,
    "🥷": 2,
    "🎯": 2,
    "🩹": 2,
    "💤": 2,
    "👀": 2,
    "🔗": 2,
    "▶": 1,
    "⏸": 1,
    "⏱": 1,
    "\ufe0f": 1,
    "↩": 1,
}


def width(text: str) -> int | None:
    """Terminal cells of one line as rich counts them, or None when this module does not know."""
    if text.isascii():
        return len(text) if text.isprintable() else None
    cells = 0
    for char in text:
        if char.isascii():
            if not char.isprintable():
                return None
            cells += 1
        elif char in WIDTHS:
            cells += WIDTHS[char]
        else:
            return None
    return cells


class Text:
    """rich.text.Text's calls that views.py makes: Text(text, style), append, append_text."""

    def __init__(self, text: str = "", style: str = ""):
        self._calls: list[tuple] = [("init", text, style)]

    def append(self, text: str | Text, style: str | None = None) -> Text:
        self._calls.append(("append", text, style))  # text: a str, or a Text (rich takes both)
        return self

    def append_text(self, other: Text) -> Text:
        self._calls.append(("append_text", other))
        return self

    @property
    def plain(self) -> str:
        return "".join(c[1].plain if isinstance(c[1], Text) else c[1] for c in self._calls)

    def __rich__(self):
        from rich.text import Text as RichText

        out = RichText()
        for call in self._calls:
            if call[0] == "init":
                out = RichText(call[1], style=call[2])
            elif call[0] == "append":
                out.append(call[1].__rich__() if isinstance(call[1], Text) else call[1], style=call[2])
            else:
                out.append_text(call[1].__rich__())
        return out


class Group:
    """rich.console.Group: renderables one after the other."""

    def __init__(self, *renderables: Any):
        self.renderables = renderables

    def __rich__(self):
        from rich.console import Group as RichGroup

        return RichGroup(*(_rich(r) for r in self.renderables))


class Table:
    """rich.table.Table with the default box (heavy head), a header, and cells on one line each."""

    def __init__(self, **options: Any):
        self.options = options
        self.columns: list[tuple[str, dict]] = []
        self.rows: list[tuple] = []

    def add_column(self, header: str, **options: Any) -> None:
        self.columns.append((header, options))

    def add_row(self, *cells: Any) -> None:
        self.rows.append(cells)

    def __rich__(self):
        from rich.table import Table as RichTable

        out = RichTable(**self.options)
        for header, options in self.columns:
            out.add_column(header, **options)
        for cells in self.rows:
            out.add_row(*(_rich(c) for c in cells))
        return out

    def lines(self, most: int) -> list[str] | None:
        """The table as rich draws it within `most` cells, or None when it would do more."""
        if set(self.options) - {"title", "show_edge"} or self.options.get("title") is not None:
            return None
        if not self.options.get("show_edge", True) or not self.rows:
            return None
        known = {"no_wrap", "min_width", "justify", "overflow"}
        if any(set(o) - known or o.get("justify", "left") not in ("left", "right") for _, o in self.columns):
            return None
        grid: list[list[str]] = [[h for h, _ in self.columns]]
        cells: list[list[int]] = []
        for texts in [grid[0]] + [[_text(c) for c in row] for row in self.rows]:
            sizes = [None if t is None or "\n" in t else width(t) for t in texts]
            if len(texts) != len(self.columns) or None in sizes:
                return None  # a cell that is no single line of known characters: rich lays it out
            cells.append([n for n in sizes if n is not None])
            if texts is not grid[0]:
                grid.append([t for t in texts if t is not None])
        widths = [max(row[i] for row in cells) for i in range(len(self.columns))]
        if any((o.get("min_width") or 0) > w for w, (_, o) in zip(widths, self.columns, strict=True)):
            return None
        if sum(widths) + 3 * len(widths) + 1 > most:
            return None

        def row(texts: list[str], sizes: list, bar: str) -> str:
            out = []
            for (_, options), text, size, full in zip(self.columns, texts, sizes, widths, strict=True):
                pad = " " * (full - size)
                out.append(f" {pad}{text} " if options.get("justify") == "right" else f" {text}{pad} ")
            return bar + bar.join(out) + bar

        def rule(left: str, fill: str, middle: str, right: str) -> str:
            return left + middle.join(fill * (w + 2) for w in widths) + right

        return [
            rule("┏", "━", "┳", "┓"),
            row(grid[0], cells[0], "┃"),
            rule("┡", "━", "╇", "┩"),
            *(row(texts, sizes, "│") for texts, sizes in zip(grid[1:], cells[1:], strict=True)),
            rule("└", "─", "┴", "┘"),
        ]


def _text(cell: Any) -> str | None:
    if isinstance(cell, str):
        return cell
    if isinstance(cell, Text):
        return cell.plain
    return None


def _rich(renderable: Any) -> Any:
    return renderable.__rich__() if isinstance(renderable, Text | Group | Table) else renderable


def _lines(renderable: Any, most: int) -> list[str] | None:
    if isinstance(renderable, Table):
        return renderable.lines(most)
    if isinstance(renderable, Group):
        out: list[str] = []
        for part in renderable.renderables:
            lines = _lines(part, most)
            if lines is None:
                return None
            out += lines
        return out
    text = _text(renderable)
    if text is None:
        return None
    lines = text.split("\n")
    if any((w := width(line)) is None or w > most for line in lines):
        return None
    return lines


class Console:
    """Prints plain output itself, and through rich (the same console views.py makes) otherwise."""

    def __init__(self, most: int, rich_console):
        self.most = self.width = most  # width: as rich's console says it
        self._rich_console = rich_console
        self._rich: Any = None

    def print(self, *renderables: Any, soft_wrap: bool = False) -> None:
        if not renderables:
            sys.stdout.write("\n")
            return
        lines = _lines(renderables[0], self.most) if len(renderables) == 1 and not soft_wrap else None
        if lines is None:
            if self._rich is None:
                self._rich = self._rich_console()
            self._rich.print(*(_rich(r) for r in renderables), soft_wrap=soft_wrap)
            return
        try:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()  # as rich does after each print
        except BrokenPipeError:  # as rich's console.on_broken_pipe: the reader is gone, exit 1 quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(1) from None


def console(rich_console) -> Any:
    """A Console for plain output when stdout is no terminal and rich would write plain UTF-8 text
    at a width known here; else the rich console `rich_console()` makes."""
    env = os.environ
    columns = env.get("COLUMNS")
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    plain = (
        not sys.stdout.isatty()
        and encoding == "utf8"
        and (columns is None or columns.isdigit())
        and not any(k in env for k in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS"))
    )
    if not plain:
        return rich_console()
    return Console(int(columns) if columns is not None else 200, rich_console)
