"""ClusterIP and NodePort allocators: pure, in-memory, owned by the API server's writer.

The API server has a single writer thread, so these are plain objects with no locking.
They hold no durable state of their own: at start-up the server rebuilds them by calling
``allocate_specific`` for every stored Service's IPs and node ports, and afterwards keeps
them in step with creates, updates and deletes (allocating *before* the write commits and
releasing if the write fails). With several API servers on one database they are each
server's hint; the database's claims decide (``apiserver/services.py``).

Both follow the Kubernetes banding rules so that users who pick addresses by hand are
unlikely to collide with automatic ones:

* ClusterIPs, KEP-3070: offset = ``min(max(16, cidrSize/16), 256)`` (0 when the CIDR has
  16 or fewer addresses). Automatic allocation takes a random free address from the upper
  (dynamic) band ``[first+offset, last]`` first and only then from the lower (static)
  band ``[first, first+offset)``.
* NodePorts, KEP-3668: offset = ``min(max(16, size/32), 128)`` (0 when the range has 16 or
  fewer ports); 86 for 30000-32767, so automatic ports come from 30086+ first.

Allocation is O(1) per call whatever the range size or fill level (a sparse Fisher-Yates
shuffle per band, see ``_FreeSet``), so an IPv6 /64 works as well as a /28, and the very
last free address is still found in O(1). Randomness comes from a ``random.Random`` the
caller may seed (``rng=``) for deterministic tests.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable

# One parser for a range given as a flag and as a constructor argument.
from componentbase.flags import parse_cidr, parse_port_range

__all__ = [
    "AllocationError",
    "AlreadyAllocated",
    "Exhausted",
    "IPAllocator",
    "OutOfRange",
    "PortAllocator",
    "parse_cidr",
    "parse_port_range",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllocationError(Exception):
    """An allocation failed; ``str(err)`` is fit for a user (a 422 field message).

    ``value`` is the requested IP/port (None for automatic allocation), for the
    ``field.Invalid`` cause the API server builds.
    """

    def __init__(self, message: str, value: str | int | None = None) -> None:
        super().__init__(message)
        self.value = value


class OutOfRange(AllocationError):
    """The requested IP/port is outside the configured range (or not a valid address)."""


class AlreadyAllocated(AllocationError):
    """The requested IP/port is in use by another Service."""


class Exhausted(AllocationError):
    """No free IP/port is left for automatic allocation."""


# --------------------------------------------------------------------------------------
# Core: O(1) random allocation over a contiguous range of offsets
# --------------------------------------------------------------------------------------


class _FreeSet:
    """The integers ``[0, size)``, split into free and taken, with O(1) random take.

    Conceptually an array holding a permutation of ``[0, size)`` whose first ``free``
    slots are the free items (a Fisher-Yates shuffle in progress). Only slots whose item
    differs from its index are stored (``_at`` slot→item, ``_pos`` item→slot), so memory is
    proportional to the items ever moved, not to ``size`` — which can be 2**64 for IPv6.
    Taking a random item swaps it to the end of the free region; taking a specific item
    or giving one back is the same swap found through ``_pos``.
    """

    __slots__ = ("size", "free", "_at", "_pos")

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._at: dict[int, int] = {}
        self._pos: dict[int, int] = {}

    def _item(self, slot: int) -> int:
        return self._at.get(slot, slot)

    def _slot(self, item: int) -> int:
        return self._pos.get(item, item)

    def _set(self, slot: int, item: int) -> None:
        if slot == item:  # back to identity: forget it, keeping the maps small
            self._at.pop(slot, None)
            self._pos.pop(item, None)
        else:
            self._at[slot] = item
            self._pos[item] = slot

    def _swap(self, i: int, j: int) -> None:
        if i != j:
            a, b = self._item(i), self._item(j)
            self._set(i, b)
            self._set(j, a)

    def is_free(self, item: int) -> bool:
        return self._slot(item) < self.free

    def take_random(self, rng: random.Random) -> int:
        r = rng.randrange(self.free)
        item = self._item(r)
        self.free -= 1
        self._swap(r, self.free)
        return item

    def take(self, item: int) -> bool:
        """Mark ``item`` taken; False if it already was."""
        slot = self._slot(item)
        if slot >= self.free:
            return False
        self.free -= 1
        self._swap(slot, self.free)
        return True

    def give(self, item: int) -> bool:
        """Mark ``item`` free again; False if it already was."""
        slot = self._slot(item)
        if slot < self.free:
            return False
        self._swap(slot, self.free)
        self.free += 1
        if self.free == self.size:  # everything free: any order is a valid state
            self._at.clear()
            self._pos.clear()
        return True


class _BandedPool:
    """Offsets ``[0, size)`` split at ``offset`` into a lower (static) and upper (dynamic) band.

    Reserved offsets are removed from automatic allocation for good but can still be
    taken explicitly; they are tracked apart so that releasing one never puts it into
    the random pool.
    """

    def __init__(self, size: int, offset: int, reserved: Iterable[int], rng: random.Random):
        offset = max(0, min(offset, size))
        self.size = size
        self.offset = offset
        self._lower = _FreeSet(offset)
        self._upper = _FreeSet(size - offset)
        self._rng = rng
        self._reserved = frozenset(reserved)
        self._reserved_taken: set[int] = set()
        for o in self._reserved:
            self._band_take(o)
        self.used = 0

    def _band_take(self, o: int) -> bool:
        return self._lower.take(o) if o < self.offset else self._upper.take(o - self.offset)

    def _band_give(self, o: int) -> bool:
        return self._lower.give(o) if o < self.offset else self._upper.give(o - self.offset)

    @property
    def auto_free(self) -> int:
        return self._lower.free + self._upper.free

    def take_random(self) -> int | None:
        if self._upper.free:
            o = self.offset + self._upper.take_random(self._rng)
        elif self._lower.free:
            o = self._lower.take_random(self._rng)
        else:
            return None
        self.used += 1
        return o

    def take(self, o: int) -> bool:
        if o in self._reserved:
            if o in self._reserved_taken:
                return False
            self._reserved_taken.add(o)
        elif not self._band_take(o):
            return False
        self.used += 1
        return True

    def give(self, o: int) -> None:
        if o in self._reserved:
            if o in self._reserved_taken:
                self._reserved_taken.discard(o)
                self.used -= 1
        elif self._band_give(o):
            self.used -= 1

    def is_taken(self, o: int) -> bool:
        if o in self._reserved:
            return o in self._reserved_taken
        return not (self._lower.is_free(o) if o < self.offset
                    else self._upper.is_free(o - self.offset))


def _band_offset(size: int, *, minimum: int, step: int, maximum: int) -> int:
    """``min(max(minimum, size/step), maximum)``, or 0 when the range is too small to split."""
    if size <= minimum:
        return 0
    return min(max(minimum, size // step), maximum)


def _make_rng(rng: random.Random | int | None) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    return random.Random(rng)


# --------------------------------------------------------------------------------------
# ClusterIPs
# --------------------------------------------------------------------------------------


class IPAllocator:
    """Service ClusterIPs from one CIDR (IPv4 or IPv6; one allocator per family).

    Usable addresses exclude the network address and, for IPv4, the broadcast address.
    ``reserved`` addresses (e.g. the DNS Service IP ``nth(10)``) are never handed out by
    ``allocate()`` but can be claimed with ``allocate_specific``. The first usable address
    is *not* reserved automatically: the server should ``allocate_specific(first_usable())``
    for the ``kubernetes`` Service during start-up.
    """

    def __init__(
        self,
        cidr: str,
        *,
        reserved: Iterable[str] = (),
        rng: random.Random | int | None = None,
    ) -> None:
        net = parse_cidr(cidr)
        self._net: IPNetwork = net
        self._base = int(net.network_address) + 1
        total = net.num_addresses
        usable = total - 2 if net.version == 4 else total - 1
        if usable < 1:
            raise ValueError(f"CIDR {net} is too small: it has no usable service addresses")
        self._usable = usable
        offsets = []
        for ip in reserved:
            o = self._offset(ip)
            if o is None:
                raise ValueError(f"reserved IP {ip!r} is not a usable address in {net}")
            offsets.append(o)
        offset = _band_offset(total, minimum=16, step=16, maximum=256)
        self._pool = _BandedPool(usable, offset, offsets, _make_rng(rng))

    # -- addressing ------------------------------------------------------------------

    @property
    def cidr(self) -> str:
        return str(self._net)

    @property
    def family(self) -> str:
        """``IPv4`` or ``IPv6``, as in ``spec.ipFamilies``."""
        return f"IPv{self._net.version}"

    @property
    def band_offset(self) -> int:
        """Size of the lower (static) band; addresses below ``nth(band_offset + 1)``."""
        return self._pool.offset

    def _text(self, offset: int) -> str:
        return str(ipaddress.ip_address(self._base + offset))

    def _parse(self, ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not isinstance(ip, str):  # ip_address(5) would happily mean 0.0.0.5
            return None
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
            return None  # "fe80::1%eth0" is not a Service address
        return addr

    def _offset(self, ip: str) -> int | None:
        """Offset of ``ip`` among usable addresses, or None if unparsable/out of range."""
        addr = self._parse(ip)
        if addr is None or addr.version != self._net.version:
            return None
        o = int(addr) - self._base
        return o if 0 <= o < self._usable else None

    def contains(self, ip: str) -> bool:
        """True if ``ip`` is a usable address of this range (network/broadcast are not)."""
        return self._offset(ip) is not None

    def first_usable(self) -> str:
        """The first usable address (``10.96.0.1`` in ``10.96.0.0/16``): the kubernetes Service."""
        return self._text(0)

    def nth(self, n: int) -> str:
        """The network address plus ``n`` (``nth(10)`` = ``10.96.0.10``), which must be usable."""
        if not 1 <= n <= self._usable:
            raise ValueError(f"{n} is outside the usable addresses 1..{self._usable} of {self.cidr}")
        return self._text(n - 1)

    # -- allocation ------------------------------------------------------------------

    def allocate(self) -> str:
        """A random free address, from the dynamic (upper) band first. Raises Exhausted."""
        o = self._pool.take_random()
        if o is None:
            raise Exhausted("range is full")
        return self._text(o)

    def allocate_specific(self, ip: str) -> str:
        """Claim ``ip`` (e.g. a user's ``spec.clusterIP``) and return its canonical text.

        Raises OutOfRange (also for text that is not an IP at all) or AlreadyAllocated,
        with Kubernetes' wording, ready for a 422 on ``spec.clusterIP``.
        """
        addr = self._parse(ip)
        if addr is None:
            raise OutOfRange(f"failed to allocate IP {ip}: not a valid IP address", ip)
        o = self._offset(ip)
        if o is None:
            raise OutOfRange(
                f"failed to allocate IP {addr}: provided IP is not in the valid range. "
                f"The range of valid IPs is {self.cidr}",
                ip,
            )
        if not self._pool.take(o):
            raise self.already_allocated(ip)
        return str(addr)

    def already_allocated(self, ip: str) -> AlreadyAllocated:
        """The refusal of ``ip`` (a valid address) in Kubernetes' words."""
        return AlreadyAllocated(
            f"failed to allocate IP {self.canonical(ip)}: provided IP is already allocated", ip)

    def canonical(self, ip: str) -> str:
        """``ip`` as ``allocate_specific`` returns it (``ip`` must be a valid address)."""
        addr = self._parse(ip)
        if addr is None:
            raise OutOfRange(f"failed to allocate IP {ip}: not a valid IP address", ip)
        return str(addr)

    def release(self, ip: str) -> None:
        """Free ``ip``. Idempotent; silently ignores unparsable or out-of-range addresses,
        so deleting a Service whose IP came from an older ``--service-cluster-ip-range`` works.
        """
        o = self._offset(ip)
        if o is not None:
            self._pool.give(o)

    def is_allocated(self, ip: str) -> bool:
        o = self._offset(ip)
        return o is not None and self._pool.is_taken(o)

    def used(self) -> int:
        """Addresses currently allocated (including claimed reserved ones)."""
        return self._pool.used

    def free(self) -> int:
        """Addresses ``allocate()`` can still hand out (unclaimed reserved ones excluded)."""
        return self._pool.auto_free

    def __repr__(self) -> str:
        return f"IPAllocator({self.cidr!r}, used={self.used()}, free={self.free()})"


# --------------------------------------------------------------------------------------
# NodePorts
# --------------------------------------------------------------------------------------


class PortAllocator:
    """Service node ports from an inclusive range (default ``30000-32767``)."""

    def __init__(
        self, port_range: str = "30000-32767", *, rng: random.Random | int | None = None
    ) -> None:
        self._first, self._last = parse_port_range(port_range)
        size = self._last - self._first + 1
        offset = _band_offset(size, minimum=16, step=32, maximum=128)
        self._pool = _BandedPool(size, offset, (), _make_rng(rng))

    @property
    def port_range(self) -> str:
        return f"{self._first}-{self._last}"

    @property
    def band_offset(self) -> int:
        """Size of the lower (static) band: 86 for the default range."""
        return self._pool.offset

    def contains(self, port: int) -> bool:
        return isinstance(port, int) and not isinstance(port, bool) and (
            self._first <= port <= self._last
        )

    def allocate(self) -> int:
        """A random free port, from the upper (dynamic) band first. Raises Exhausted."""
        o = self._pool.take_random()
        if o is None:
            raise Exhausted("range is full")
        return self._first + o

    def allocate_specific(self, port: int) -> None:
        """Claim ``port``; OutOfRange / AlreadyAllocated with Kubernetes' wording (which,
        unlike ClusterIPs, carries no "failed to allocate" prefix)."""
        if not self.contains(port):
            raise OutOfRange(
                "provided port is not in the valid range. The range of valid ports is "
                f"{self.port_range}",
                port,
            )
        if not self._pool.take(port - self._first):
            raise self.already_allocated(port)

    def already_allocated(self, port: int) -> AlreadyAllocated:
        """The refusal of ``port`` in Kubernetes' words (no "failed to allocate" prefix)."""
        return AlreadyAllocated("provided port is already allocated", port)

    def canonical(self, port: int) -> int:
        """``port`` itself: as ``IPAllocator.canonical``, for code that handles both."""
        return port

    def release(self, port: int) -> None:
        """Free ``port``; idempotent, ignores ports outside the range."""
        if self.contains(port):
            self._pool.give(port - self._first)

    def is_allocated(self, port: int) -> bool:
        return self.contains(port) and self._pool.is_taken(port - self._first)

    def used(self) -> int:
        return self._pool.used

    def free(self) -> int:
        return self._pool.auto_free

    def __repr__(self) -> str:
        return f"PortAllocator({self.port_range!r}, used={self.used()}, free={self.free()})"
