"""kube-proxy's chain names, bit for bit, so operators recognise them across restarts.

The per-Service chains are ``KUBE-SVC-``/``KUBE-SVL-``/``KUBE-EXT-``/``KUBE-FW-`` plus
16 characters of ``base32(sha256("<ns>/<svc>[:<port>]" + "<proto>"))``; the
per-endpoint chain ``KUBE-SEP-`` hashes the same string followed by ``"<ip>:<port>"``.
iptables limits chain names to 28 characters, which prefix + 16 always respects.
The reference (kube-proxy-iptables.md §2.4) lists upstream's test vectors; the unit
tests check all three.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

# Top-level chains we own. Fixed names, never deleted as stale.
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
# filter: DROP what a KUBE-FW chain did not let through (still addressed to the LB IP)
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
# filter: the martian drop that makes route_localnet=1 safe (localhost NodePorts)
KUBE_FIREWALL = "KUBE-FIREWALL"

# Prefixes of per-Service and per-endpoint chains: a chain with one of these that the
# desired ruleset does not contain is ours and stale, and is deleted.
SERVICE_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-")
ENDPOINT_PREFIX = "KUBE-SEP-"
HASHED_PREFIXES = (*SERVICE_PREFIXES, ENDPOINT_PREFIX)

MAX_CHAIN_LENGTH = 28  # XT_EXTENSION_MAXNAMELEN - 1 in the kernel
_CHAIN_NAME = re.compile(r"KUBE-[A-Z0-9-]+")


@lru_cache(maxsize=1 << 17)
def is_valid_chain(name: str) -> bool:
    """A chain name this proxy may write: ours (``KUBE-``), short, and restore-safe."""
    return len(name) <= MAX_CHAIN_LENGTH and bool(_CHAIN_NAME.fullmatch(name))


def is_hashed_chain(name: str) -> bool:
    """True for per-Service/per-endpoint chains (the ones that can go stale)."""
    return name.startswith(HASHED_PREFIXES)


def port_hash(service_port_name: str, protocol: str) -> str:
    """The 16-character hash of ``"<ns>/<svc>[:<port>]"`` + lower-case protocol."""
    return _hash16(service_port_name + protocol.lower())


def service_chain(prefix: str, service_port_name: str, protocol: str) -> str:
    """``KUBE-SVC-…`` etc. for one Service port; ``prefix`` is one of SERVICE_PREFIXES."""
    if prefix not in SERVICE_PREFIXES:
        raise ValueError(f"not a service chain prefix: {prefix!r}")
    return prefix + port_hash(service_port_name, protocol)


def endpoint_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    """``KUBE-SEP-…`` for one endpoint (``"ip:port"``) of one Service port."""
    return ENDPOINT_PREFIX + _hash16(service_port_name + protocol.lower() + endpoint)


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648, as Go's base32.StdEncoding
_PAIRS = [a + b for a in _BASE32 for b in _BASE32]  # 10 bits → two characters
_SHIFTS = (70, 60, 50, 40, 30, 20, 10, 0)


def _hash16(text: str) -> str:
    # 16 base32 characters are exactly the digest's first 80 bits, so only those are
    # encoded, two characters per lookup (base64.b32encode is pure Python, and this
    # runs 60,000 times for 10,000 Services). Equal to base32(sha256(text))[:16]; the
    # unit tests check both.
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    return "".join([_PAIRS[(bits >> shift) & 1023] for shift in _SHIFTS])
