"""The community's calendar: public holidays, which change both how many requests come in and
what the demand forecaster expects on a day."""

from __future__ import annotations

from datetime import date, timedelta


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def public_holidays(first: date, last: date) -> list[date]:
    """Common European public holidays between two dates (inclusive)."""
    out = []
    for y in range(first.year, last.year + 1):
        e = easter(y)
        days = [
            date(y, 1, 1),
            e - timedelta(days=2),
            e + timedelta(days=1),
            date(y, 5, 1),
            e + timedelta(days=39),
            date(y, 12, 25),
            date(y, 12, 26),
        ]
        out += [d for d in days if first <= d <= last]
    return sorted(out)
