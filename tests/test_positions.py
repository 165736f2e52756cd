"""Position keys: the database's functions make the keys of the ``fractional-indexing`` package."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from backend.data.positions import MAX_KEY_LENGTH, integer_index, key_at, key_between, keys_between


def dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


def test_key_at_is_the_packages_sequence_of_keys() -> None:
    assert [key_at(i) for i in range(5000)] == keys_between(None, None, 5000)
    assert (key_at(61), key_at(62), key_at(62 + 62**2)) == ("az", "b00", "c000")


def test_the_database_and_the_package_agree_on_random_neighbours(database_url: str) -> None:
    rnd = random.Random(19)

    async def main() -> None:
        conn = await asyncpg.connect(dsn(database_url))
        try:
            indexes = [0, 1, 61, 62, 63, 3905, 3906, 242233, 242234, 10**7, rnd.randrange(10**12)]
            got = await conn.fetch("SELECT position_key_at(i) FROM unnest($1::bigint[]) i", indexes)
            assert [r[0] for r in got] == [key_at(i) for i in indexes]
            # Its inverse on integer parts (a renumber starts above a group's largest key).
            keys = [key_at(i) + tail for i in indexes for tail in ("", "V", "0V")] + [
                "Zz",
                "A00000000000000000000000000V",
            ]
            back = await conn.fetch("SELECT position_integer_index(k) FROM unnest($1::text[]) k", keys)
            assert [r[0] for r in back] == [integer_index(k) for k in keys]
            assert [integer_index(key_at(i)) for i in indexes] == indexes
            # Keys grown the way users make them: between neighbours, before the first, after the last.
            keys = sorted([*keys_between(None, None, 40), "Zz", "Zy", "a0V", "a0l"])
            for _ in range(3000):
                a, b = sorted(rnd.sample(keys, 2))
                pair = (None if rnd.random() < 0.15 else a, None if rnd.random() < 0.15 else b)
                mine = await conn.fetchval("SELECT position_key_between($1, $2)", *pair)
                assert mine == key_between(*pair), pair
                keys = sorted({*keys, mine})
            assert len(keys) > 100
            assert max(len(k) for k in keys) > 3  # deep fractions, not only integers
        finally:
            await conn.close()

    asyncio.run(main())


def test_keys_between_close_neighbours_grow_slowly() -> None:
    # 300 keys put into one gap, each right after the same key: the length stays far below the limit.
    low, high = "a0", "a1"
    for _ in range(300):
        high = key_between(low, high)
    assert len(high) < MAX_KEY_LENGTH
    assert low < high


@pytest.mark.parametrize("pair", [("a1", "a0"), ("a0", "a0")])
def test_keys_out_of_order_are_refused(database_url: str, pair: tuple[str, str]) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(dsn(database_url))
        try:
            with pytest.raises(asyncpg.RaiseError, match="out of order"):
                await conn.fetchval("SELECT position_key_between($1, $2)", *pair)
        finally:
            await conn.close()

    asyncio.run(main())
