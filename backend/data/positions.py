"""Position keys: the fractional-indexing scheme (base-62 strings such as ``a0``, ``a1``, ``a0V``).

Siblings are ordered by their key compared byte by byte (the columns are ``COLLATE "C"``). A key can
always be made between two neighbours, so a move writes one row and renumbers nobody.

Where the keys are made: in PostgreSQL. The database functions ``position_key_between(a, b)`` and
``position_key_at(i)`` (migration 0007) implement the scheme of the ``fractional-indexing`` package,
which this module wraps as the reference. Create and move choose a key from the neighbours' keys, and
the neighbours are only stable while the owner's lock is held, inside the writing statement: a key
made in Python would need the neighbours read first (one more round trip) and then a lock and a
re-check in the write anyway. So the statements compute keys in SQL, in one round trip under the
per-user lock; this module gives Python the same keys (tests check SQL against it on many random
neighbour pairs), and the limits both sides share.
"""

from __future__ import annotations

# The package ships no type information (no py.typed).
import fractional_indexing  # type: ignore[import-untyped]

# A key longer than this is never stored: the sibling group is renumbered first.
MAX_KEY_LENGTH = 255
DIGITS: str = fractional_indexing.BASE_62_DIGITS
FIRST = "a0"


def key_between(before: str | None, after: str | None) -> str:
    """A key sorting strictly between ``before`` and ``after`` (None: the open end)."""
    key: str = fractional_indexing.generate_key_between(before, after)
    return key


def keys_between(before: str | None, after: str | None, n: int) -> list[str]:
    """``n`` distinct keys in order between ``before`` and ``after``."""
    keys: list[str] = fractional_indexing.generate_n_keys_between(before, after, n)
    return keys


def key_at(index: int) -> str:
    """The ``index``-th (0-based) of the evenly spread integer keys a0, a1, ... az, b00, b01, ...: a
    backfilled group of n siblings gets the first n in order, a renumbered one the n after its largest
    key (the same as ``keys_between(None, None, n)[index]``, computed directly)."""
    width = 1
    while index >= len(DIGITS) ** width:
        index -= len(DIGITS) ** width
        width += 1
    digits = []
    for _ in range(width):
        index, digit = divmod(index, len(DIGITS))
        digits.append(DIGITS[digit])
    return chr(ord("a") + width - 1) + "".join(reversed(digits))


def integer_index(key: str) -> int:
    """The inverse of ``key_at`` for ``key``'s integer part; -1 for keys below a0 (heads A-Z)."""
    width = ord(key[0]) - ord("a") + 1
    if width < 1:
        return -1
    offset: int = sum(len(DIGITS) ** w for w in range(1, width))
    value = 0
    for digit in key[1 : width + 1]:
        value = value * len(DIGITS) + DIGITS.index(digit)
    return offset + value


def fits(key: str) -> bool:
    return len(key) <= MAX_KEY_LENGTH
