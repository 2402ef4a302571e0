"""Which live member polls which target: rendezvous (highest-random-weight) hashing.

Every member computes the same owner from the same member list, with no coordination: the owner
of a key is the member with the highest hash of (member, key). Removing a member moves only its
own keys; adding one moves to it only the keys it now wins (Thaler and Ravishankar, "Using
name-based mappings to increase hit rates", IEEE/ACM ToN 1998).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def weight(member: str, key: str) -> int:
    """A stable 64-bit pseudo-random weight of the pair (the same on every replica and run)."""
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, members: Sequence[str]) -> str | None:
    """The member that owns ``key``; None when there are no members. Ties break by name."""
    if not members:
        return None
    return max(members, key=lambda m: (weight(m, key), m))


def owned(keys: Iterable[str], members: Sequence[str], me: str) -> list[str]:
    """The keys ``me`` owns among ``members`` (all of them when ``me`` is the only member)."""
    return [k for k in keys if owner(k, members) == me]
