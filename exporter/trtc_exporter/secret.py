"""A string wrapper that refuses to print itself.

Credentials travel through config objects, exceptions and log calls; wrapping them means a stray
``repr`` or f-string anywhere prints ``<secret>`` instead of the key.
"""

from __future__ import annotations

import hmac


class Secret:
    """Holds a secret string; only :meth:`reveal` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret; call only where it is put on the wire or hashed."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "<secret>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")
