"""Resource quantities read as Kubernetes reads them, exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest

from apimachinery.quantities import FORMAT_MESSAGE, QuantityError, is_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1), ("0", 0), ("100m", Fraction(1, 10)), ("0.1", Fraction(1, 10)),
        ("1.5", Fraction(3, 2)), (".5", Fraction(1, 2)), ("5.", 5), ("+2", 2), ("-1", -1),
        ("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1Ki", 1024), ("2Ei", 2 * 2**60),
        ("1k", 1000), ("1M", 10**6), ("1G", 10**9), ("1T", 10**12), ("1P", 10**15),
        ("1E", 10**18), ("5n", Fraction(5, 10**9)), ("5u", Fraction(5, 10**6)),
        ("2e3", 2000), ("2E3", 2000), ("1e-3", Fraction(1, 1000)), ("1e+2", 100),
        (3, 3), (0.25, Fraction(1, 4)),
    ],
)
def test_parses_exactly(text, value):
    assert parse_quantity(text) == value
    assert is_quantity(text)


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1x", "1 Gi", "Gi", "1.2.3", ".", "1Gi1", "1mi", "1KiB", "1e", "1e999",
     None, True, [], {}, float("nan"), float("inf")],
)
def test_rejects_what_is_not_a_quantity(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)
    assert not is_quantity(text)


def test_the_format_error_quotes_kubernetes_expression():
    with pytest.raises(QuantityError, match="must match the regular expression") as caught:
        parse_quantity("lots")
    assert str(caught.value) == FORMAT_MESSAGE


def test_the_same_amount_written_two_ways_compares_equal():
    assert parse_quantity("100m") == parse_quantity("0.1") == parse_quantity("1e-1")
    assert parse_quantity("1Gi") > parse_quantity("1G")
