"""Resource quantities (``100m``, ``128Mi``, ``1.5G``, ``2e3``) as apimachinery's ``resource.Quantity``.

A quantity is a decimal number with an optional suffix: a binary SI one
(``Ki Mi Gi Ti Pi Ei``, powers of 1024), a decimal SI one (``n u m k M G T P E``,
powers of 1000) or a decimal exponent (``e3``, ``E-2``). Values are exact
(``Fraction``), so ``100m`` and ``0.1`` compare equal and ``1Gi`` never rounds.

Used where requests and limits must be compared (validation: a request may not
exceed its limit; a pod's QoS class: requests equal to limits make it
Guaranteed). The text a user wrote is what the API stores and returns; this
module only reads it. Pure code: no I/O.
"""

from __future__ import annotations

import re
from fractions import Fraction

# The regular expression Kubernetes quotes in its error (resource.ErrFormatWrong).
PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_MESSAGE = f"quantities must match the regular expression '{PATTERN}'"

_SHAPE = re.compile(PATTERN)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}
# Exponents past this are not quantities a cluster means (Kubernetes caps scale too);
# the cap keeps Fraction arithmetic on hostile input cheap.
MAX_EXPONENT = 64


class QuantityError(ValueError):
    """Not a quantity; the message is Kubernetes' and fit for a user."""


def parse_quantity(text: object) -> Fraction:
    """The exact value of a quantity string (or an int/float, as YAML may give).

    Raises ``QuantityError`` for anything else, including an unknown suffix.
    """
    if isinstance(text, bool):
        raise QuantityError(FORMAT_MESSAGE)
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if text != text or text in (float("inf"), float("-inf")):
            raise QuantityError(FORMAT_MESSAGE)
        return Fraction(text)
    if not isinstance(text, str):
        raise QuantityError(FORMAT_MESSAGE)
    shape = _SHAPE.fullmatch(text)
    if shape is None:
        raise QuantityError(FORMAT_MESSAGE)
    number, suffix = shape.groups()
    if _NUMBER.fullmatch(number) is None:
        raise QuantityError(FORMAT_MESSAGE)
    value = Fraction(number)
    if suffix in _BINARY:
        return value * (1 << _BINARY[suffix])
    if suffix in _DECIMAL:
        return value * Fraction(10) ** _DECIMAL[suffix]
    exponent = _EXPONENT.fullmatch(suffix)
    if exponent is None:
        raise QuantityError("unable to parse quantity's suffix")
    power = int(exponent.group(1))
    if abs(power) > MAX_EXPONENT:
        raise QuantityError("unable to parse quantity's suffix")
    return value * Fraction(10) ** power


def is_quantity(text: object) -> bool:
    try:
        parse_quantity(text)
    except QuantityError:
        return False
    return True
