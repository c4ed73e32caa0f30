"""Checking a schedule's cron string without importing Dagster: five fields (or a macro such as ``@daily``), read
as Dagster (croniter) reads them, including ranges that wrap (``sat-mon``), ``?``, ``L`` (the last day of the month)
and ``d#n`` (the n-th weekday d); seconds fields, ``W`` and ``@reboot`` are refused, as Dagster refuses them. A
schedule that can never fire (February 30 or 31 only) is refused too."""

from __future__ import annotations

import re

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, low, high, names whose index + offset is the value)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...], int], ...] = (
    ("minute", 0, 59, (), 0),
    ("hour", 0, 23, (), 0),
    ("day of month", 1, 31, (), 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day of week", 0, 7, _DAYS, 0),
)
_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<low>[0-9a-z]+)(?:-(?P<high>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?$")


def cron_problem(expression: str) -> str | None:
    """Why a cron expression is invalid, or None when it is valid."""
    text = expression.strip().lower()
    if text.startswith("@"):
        return None if text in MACROS else f"unknown cron macro {expression!r}; known: {', '.join(MACROS)}"
    parts = text.split()
    if len(parts) != 5:
        return (f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                f"{expression!r} has {len(parts)}")
    days: list[set[int]] = []
    for part, (name, low, high, names, offset) in zip(parts, _FIELDS, strict=True):
        values: set[int] = set()
        for item in part.split(","):
            problem = _item_problem(item, name, low, high, names, offset, values)
            if problem:
                return f"{expression!r}: {problem}"
        days.append(values)
    if days[3] == {2} and days[2] and days[2] <= {30, 31}:
        return f"{expression!r}: February has no day {'/'.join(str(d) for d in sorted(days[2]))}"
    return None


def _item_problem(item: str, name: str, low: int, high: int, names: tuple[str, ...], offset: int,
                  values: set[int]) -> str | None:
    if item == "?" and name in ("day of month", "day of week"):
        item = "*"
    if item == "l" and name == "day of month":
        values.add(28)  # the last day: some day of every month
        return None
    if "#" in item and name == "day of week":
        day, _, nth = item.partition("#")
        weekday = _value(day, names, offset)
        if weekday is None or not low <= weekday <= high or not nth.isdigit() or not 1 <= int(nth) <= 5:
            return f"{name} field: {item!r} is not weekday#n with n from 1 to 5"
        values.add(weekday)
        return None
    match = _ITEM.match(item)
    if match is None:
        return f"{name} field: cannot read {item!r}"
    step = int(match["step"]) if match["step"] else 1
    if step < 1:
        return f"{name} field: a step must be at least 1, got {item!r}"
    if match["star"]:
        first, last = low, high
    else:
        first = _value(match["low"], names, offset)
        last = _value(match["high"], names, offset) if match["high"] else first
        if first is None or last is None:
            return f"{name} field: {item!r} is not a number or a name"
        if not (low <= first <= high and low <= last <= high):
            return f"{name} field: {item!r} is outside {low}-{high}"
        if match["step"] and not match["high"]:
            last = high  # "a/n": from a to the end, every n
    span = range(first, last + 1) if first <= last else [*range(first, high + 1), *range(low, last + 1)]  # wraps
    values.update(list(span)[::step])
    return None


def _value(token: str, names: tuple[str, ...], offset: int) -> int | None:
    if token.isdigit():
        return int(token)
    return names.index(token) + offset if token in names else None
