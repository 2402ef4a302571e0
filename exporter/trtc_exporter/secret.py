"""A string wrapper that refuses to print itself.

Credentials travel through config objects, exceptions and log calls; wrapping them means a stray
``repr``, ``str``, ``format``, f-string, ``%`` formatting or exception message anywhere prints
``<secret>`` instead of the key. Pickling is refused (a pickle is a printable copy); ``copy`` and
``deepcopy`` return the same immutable object.
"""

from __future__ import annotations

import hmac

REDACTED = "<secret>"


class Secret:
    """Holds a secret string; only :meth:`reveal` gives it back."""

    __slots__ = ("_value",)

    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """Return the secret; call only where it is put on the wire or hashed."""
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Secret is immutable")

    def __eq__(self, other: object) -> bool:
        """Equal to another Secret with the same value (constant-time); never equal to a str."""
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")
