"""Rows of text cells as an aligned plain-text table, for the command line."""

from __future__ import annotations


def plain_table(rows: list[dict[str, str]], empty: str = "(no metrics)") -> str:
    """A header, a rule and one line per row, each column padded to its widest cell."""
    if not rows:
        return empty
    columns = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(r[c].ljust(w) for c, w in zip(columns, widths, strict=True)) for r in rows]
    return "\n".join(lines)
