"""How durations and money read for humans: PLAN.md, terminal tables, `skyplan diff`.

One set of rules everywhere, so the same figure never reads two ways (plan.json and `--json`
keep the exact numbers):

* durations (planned hours): under a minute in seconds ("36 s", "<1 s"), under an hour in minutes
  ("25 min"), under 100 hours in hours and minutes ("2 h 5 min", "16 h 4 min", "36 h"), beyond
  that in whole hours ("168 h"). Estimates are not more precise than a minute.
* amounts of money: cents ("$1,234.57"); a non-zero amount under a cent reads "<$0.01", never
  "$0.00"; zero is "$0.00".
* changes carry their sign ("+$1.20", "−<$0.01", "+1 h 5 min"); a zero change has none.
* hourly prices keep four significant digits ("0.0042", "1.234", "32.77"), so a cheap
  instance never shows as 0.
* wall-clock seconds (terminal only): "0.42 s", "1 min 5 s".
"""

from __future__ import annotations

import math

MINUS = "−"  # U+2212: a real minus sign lines up with "+" in tables

# Below this an amount is zero: plan.json rounds money to 6 decimals.
_ZERO_MONEY = 5e-7


def duration(hours: float) -> str:
    """A planned duration given in hours.

    >>> [duration(h) for h in (0, 0.01, 0.5, 2.0833, 16.0622, 36, 167.6)]
    ['0 min', '36 s', '30 min', '2 h 5 min', '16 h 4 min', '36 h', '168 h']
    """
    hours = float(hours)
    if not math.isfinite(hours):
        return f"{hours} h"
    seconds = round(abs(hours) * 3600)
    sign = MINUS if hours < 0 and seconds else ""
    if seconds == 0:
        return "0 min" if hours == 0 else "<1 s"
    if seconds < 60:
        return f"{sign}{seconds} s"
    minutes = round(abs(hours) * 60)
    if minutes < 60:
        return f"{sign}{minutes} min"
    if abs(hours) >= 100:
        return f"{sign}{round(abs(hours))} h"
    h, m = divmod(minutes, 60)
    return f"{sign}{h} h" + (f" {m} min" if m else "")


def duration_delta(hours: float) -> str:
    """A change of duration: "+1 h 5 min", "−20 min", "no change"."""
    text = duration(hours)
    if text in ("0 min", "<1 s"):
        return "no change"
    return text if text.startswith(MINUS) else f"+{text}"


def money(amount: float | None) -> str:
    """An amount in USD.

    >>> [money(x) for x in (None, 0, 0.0041, 0.5, 1234.567, -2)]
    ['—', '$0.00', '<$0.01', '$0.50', '$1,234.57', '−$2.00']
    """
    if amount is None:
        return "—"
    amount = float(amount)
    sign = MINUS if amount < 0 else ""
    size = abs(amount)
    if size < _ZERO_MONEY:
        return "$0.00"
    if size < 0.005:
        return f"{sign}<$0.01"
    return f"{sign}${size:,.2f}"


def money_delta(amount: float) -> str:
    """A change of cost: "+$1.20", "−<$0.01", "$0.00" (no sign when nothing changed).

    >>> [money_delta(x) for x in (0, 0.001, -3.5)]
    ['$0.00', '+<$0.01', '−$3.50']
    """
    text = money(amount)
    if text == "$0.00" or text.startswith(MINUS):
        return text
    return f"+{text}"


def rate(price: float | None) -> str:
    """An hourly price in USD without the unit (table columns say "$/h").

    >>> [rate(x) for x in (None, 0, 0.0042, 0.04160, 1.2345, 32.7726)]
    ['—', '0', '0.0042', '0.0416', '1.234', '32.77']
    """
    if price is None:
        return "—"
    price = float(price)
    if price == 0:
        return "0"
    if abs(price) >= 10:
        return f"{price:,.2f}"
    return f"{price:.4g}"


def percent(fraction: float) -> str:
    """A ratio as a percentage: "0%", "<0.01%", "12.5%".

    >>> [percent(x) for x in (0, 0.00001, 0.125)]
    ['0%', '<0.01%', '12.5%']
    """
    value = abs(float(fraction)) * 100
    if value == 0:
        return "0%"
    if value < 0.01:
        return "<0.01%"
    return f"{float(fraction) * 100:.3g}%"


def seconds(wall_s: float) -> str:
    """Elapsed wall-clock seconds (terminal output only; never written under DIR).

    >>> [seconds(x) for x in (0.004, 0.42, 12.3, 65)]
    ['<0.01 s', '0.42 s', '12.3 s', '1 min 5 s']
    """
    wall_s = float(wall_s)
    if wall_s < 0.005:
        return "<0.01 s"
    if wall_s < 10:
        return f"{wall_s:.2f} s"
    if wall_s < 60:
        return f"{wall_s:.1f} s"
    m, s = divmod(round(wall_s), 60)
    return f"{m} min {s} s" if s else f"{m} min"
