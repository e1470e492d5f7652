"""Shared input validation: every public function reports bad input with the parameter's name
and the allowed range, before any tensor work starts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name`` and ``[low, high]``."""
    if isinstance(value, bool):
        raise ValueError(f"`{name}` must be an integer{_range(low, high)}, got {value!r}")
    if not isinstance(value, Integral):
        if isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"`{name}` must be an integer{_range(low, high)}, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"`{name}` must be an integer{_range(low, high)}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the range, or raise ``ValueError``.

    ``low_open=True`` excludes ``low`` itself (for quantities that must be strictly positive).
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite number{_range(low, high, low_open)}, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise ValueError(f"`{name}` must be a number{_range(low, high, low_open)}, got {value!r}")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError`` listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {listed}; got {value!r}")
    return value


def check_list(name: str, value: Any) -> list[Any]:
    """``value`` (any iterable but a string) as a non-empty list, or raise ``ValueError`` naming
    ``name``: a bare number or string where a list belongs is a mistake, not a list of one."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"`{name}` must be a non-empty list, got {value!r}")
    values = list(value)
    if not values:
        raise ValueError(f"`{name}` must be a non-empty list, got {value!r}")
    return values


def check_float_list(
    name: str, value: Any, length: int, *, low: float | None = None, low_open: bool = False
) -> tuple[float, ...]:
    """Broadcast a float or a sequence of ``length`` floats to a tuple, each checked."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != length:
            raise ValueError(f"`{name}` must be a number or {length} numbers, got {len(value)}")
        return tuple(
            check_float(f"{name}[{i}]", v, low=low, low_open=low_open) for i, v in enumerate(value)
        )
    return (check_float(name, value, low=low, low_open=low_open),) * length


def _range(low: Any, high: Any, low_open: bool = False) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low}"
    if low is None:
        return f" <= {high}"
    return f" in {'(' if low_open else '['}{low}, {high}]"
