"""Flag value types every long-running command shares, as argparse ``type=`` functions.

Each builder returns a one-argument function that turns the flag's text into a value
or raises ``argparse.ArgumentTypeError``, so argparse reports every bad value the same
way for every command (``mp-dnsd: error: argument --ttl: must be between 0 and 3600,
got 9999``, exit status 2). Checks that involve several flags run after parsing and
go through ``parser.error`` for the same style. ``Parser`` is argparse's parser
with a one-line error (no usage block), so a wrapper script or a test sees exactly
``prog: error: …`` on stderr.

- ``host_port()``: ``HOST:PORT`` or ``[V6]:PORT`` (Go's ``net.SplitHostPort`` rule:
  an IPv6 host needs brackets);
- ``duration()``: plain seconds (``40``, ``0.5``) or a Go duration (``500ms``,
  ``1m30s``), as kube-* components take them;
- ``integer()``: an integer within bounds;
- ``boolean()``: Go's ``strconv.ParseBool`` words (``--leader-elect=false``);
- ``cidr()`` and ``port_range()``: ``10.96.0.0/16`` and ``30000-32767``.

The ``parse_*`` functions under them are pure and raise ``ValueError``; the API
server's allocators use the same ones for what they are given at start.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, NoReturn, TypeVar

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")

# Go's time.ParseDuration units (``µs`` and ``us`` both mean microseconds).
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class Parser(argparse.ArgumentParser):
    """argparse's parser; an error is the one line ``prog: error: message``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class HostPort(NamedTuple):
    """An address to listen on or connect to; unpacks as ``(host, port)``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def typed(parse: Callable[[str], T], name: str) -> Callable[[str], T]:
    """``parse`` with ``ValueError`` turned into argparse's error for a flag value."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


# -- HOST:PORT -----------------------------------------------------------------------------


def parse_host_port(text: str, *, default_host: str | None = None, ip_only: bool = False,
                    min_port: int = 0) -> HostPort:
    """``host:port``, ``[v6]:port``; an empty host becomes ``default_host`` (else is an
    error); ``ip_only`` refuses names (a DNS server can't lean on DNS to start)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"{text!r}: put an IPv6 address in brackets, [::1]:{port}")
    if not sep:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if not host:
        if default_host is None:
            raise ValueError(f"{text!r} is not HOST:PORT (the host is missing)")
        host = default_host
    if ip_only:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port.isdecimal() or not min_port <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from {min_port} to 65535")
    return HostPort(host, int(port))


def host_port(*, default_host: str | None = None, ip_only: bool = False,
              min_port: int = 0) -> Callable[[str], HostPort]:
    """argparse type for ``HOST:PORT`` (see ``parse_host_port``)."""
    return typed(lambda text: parse_host_port(
        text, default_host=default_host, ip_only=ip_only, min_port=min_port), "host_port")


# -- durations -----------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds from ``"40"``, ``"0.5"``, ``"500ms"``, ``"1m30s"`` or ``"2h"``."""
    s = text.strip()
    try:
        seconds = float(s)
    except ValueError:
        parts = _DURATION_PART.findall(s)
        if not s or "".join(a + u for a, u in parts) != s:
            raise ValueError(f"{text!r} is not a duration (seconds, or like 500ms, 1m30s, "
                             "2h)") from None
        seconds = sum(float(amount) * _UNITS[unit] for amount, unit in parts)
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a duration (seconds, or like 500ms, 1m30s, 2h)")
    return seconds


def duration(*, minimum: float = 0.0, positive: bool = True,
             maximum: float | None = None) -> Callable[[str], float]:
    """argparse type for a duration in seconds: more than 0 when ``positive`` (else at
    least ``minimum``), and at most ``maximum``."""

    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if positive and not seconds > 0:
            raise ValueError(f"must be more than 0 seconds, got {text!r}")
        if seconds < minimum:
            raise ValueError(f"must be at least {minimum:g} seconds, got {text!r}")
        if maximum is not None and seconds > maximum:
            raise ValueError(f"must be at most {maximum:g} seconds, got {text!r}")
        return seconds

    return typed(parse, "duration")


# -- integers ------------------------------------------------------------------------------


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """argparse type for an integer in ``[low, high]`` (either bound may be open)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        if low is not None and value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high}, got {value}")
        return value

    return typed(parse, "integer")


# -- booleans ------------------------------------------------------------------------------

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``, which kube-* components' boolean flags use."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true or false)")


def boolean() -> Callable[[str], bool]:
    """argparse type for ``--flag=true|false`` (give ``nargs="?", const=True`` so a
    bare ``--flag`` means true, as for a Go bool flag)."""
    return typed(parse_bool, "boolean")


# -- CIDRs and port ranges -----------------------------------------------------------------


def parse_cidr(text: str) -> IPNetwork:
    """An IPv4/IPv6 CIDR such as ``10.96.0.0/16``; ValueError with a one-line message.

    Stricter than kube-apiserver (which masks host bits silently): host bits set is almost
    always a typo, so the message suggests the network the user probably meant.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"invalid CIDR {text!r}: expected an address/prefix such as 10.96.0.0/16")
    text = text.strip()
    if "/" not in text:
        raise ValueError(
            f"invalid CIDR {text!r}: missing prefix length (e.g. {text}/16 or {text}/112)"
        )
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"invalid CIDR {text!r}: {exc}") from None
        raise ValueError(
            f"invalid CIDR {text!r}: host bits are set (did you mean {loose}?)"
        ) from None


def cidr(*, ipv4_only: bool = False, allow_empty: bool = False) -> Callable[[str], str]:
    """argparse type for a CIDR, kept as its (canonical) text; ``''`` passes when
    ``allow_empty`` (a flag where empty turns a feature off)."""

    def parse(text: str) -> str:
        if allow_empty and text == "":
            return text
        net = parse_cidr(text)
        if ipv4_only and net.version != 4:
            raise ValueError(f"invalid CIDR {text!r}: expected an IPv4 CIDR")
        if str(net) != text:
            raise ValueError(f"invalid CIDR {text!r}: not in canonical form ({net})")
        return text

    return typed(parse, "cidr")


def parse_port_range(text: str) -> tuple[int, int]:
    """Parse ``A-B`` (inclusive), ``A+N`` (A..A+N) or a single port ``A``.

    Returns ``(first, last)``; ValueError with a one-line message for anything else,
    including ports outside 1-65535 or ``last < first``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"invalid port range {text!r}: expected e.g. 30000-32767")
    s = text.strip()
    try:
        if "-" in s:
            a, b = s.split("-", 1)
            first, last = int(a.strip()), int(b.strip())
        elif "+" in s:
            a, b = s.split("+", 1)
            first = int(a.strip())
            last = first + int(b.strip())
        else:
            first = last = int(s)
    except ValueError:
        raise ValueError(
            f"invalid port range {text!r}: expected A-B with integer ports, e.g. 30000-32767"
        ) from None
    if not (1 <= first <= 65535) or not (1 <= last <= 65535):
        raise ValueError(f"invalid port range {text!r}: ports must be between 1 and 65535")
    if last < first:
        raise ValueError(f"invalid port range {text!r}: end port is less than start port")
    return first, last


def port_range() -> Callable[[str], str]:
    """argparse type for ``A-B`` (or ``A+N``, ``A``), kept as text once checked."""

    def parse(text: str) -> str:
        parse_port_range(text)
        return text

    return typed(parse, "port_range")


_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Listen:
    """An address to serve on; ``netns`` names the network namespace the socket is
    made in (mp-apiserver's and mp-dnsd's ``--listen netns:NS:IP:PORT``)."""

    host: str
    port: int
    netns: str = ""

    def __str__(self) -> str:
        where = f"[{self.host}]" if ":" in self.host else self.host
        return (f"netns:{self.netns}:" if self.netns else "") + f"{where}:{self.port}"

    @property
    def is_wildcard(self) -> bool:
        return ipaddress.ip_address(self.host).is_unspecified


def parse_listen(value: str, *, default_host: str | None = None, min_port: int = 0) -> Listen:
    """``IP:PORT``, ``[V6]:PORT`` or ``netns:NAME:IP:PORT``. IP addresses only: a server
    can't lean on DNS to start (and the API server's go into its certificate)."""
    netns = ""
    if value.startswith("netns:"):
        _, netns, rest = value.split(":", 2) if value.count(":") >= 2 else ("", "", "")
        if not _NETNS.match(netns) or netns in (".", ".."):
            raise ValueError(f"{value!r}: expected netns:NAME:IP:PORT")
        value = rest
    host, port = parse_host_port(value, default_host=default_host, ip_only=True,
                                 min_port=min_port)
    return Listen(host, port, netns)
