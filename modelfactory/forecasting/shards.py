"""Stores split into shards, so the model factory can train each shard in its own pipeline task.

A store's shard depends only on its id and the number of shards, never on which other
stores the data holds: re-running with more or fewer stores moves no store between
shards, and a retried shard task trains exactly the stores it trained before. The id is
hashed (BLAKE2b) rather than taken modulo N, so ids that share a pattern (every store
number a multiple of 10) still spread over all shards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def check_shards(n_shards: int) -> int:
    if isinstance(n_shards, bool) or int(n_shards) != n_shards or n_shards < 1:
        raise ValueError(f"n_shards must be a whole number of at least 1, got {n_shards!r}")
    return int(n_shards)


def shard_of(store: int, n_shards: int) -> int:
    """The shard (0 .. n_shards - 1) that ``store`` always lands in for ``n_shards`` shards."""
    n_shards = check_shards(n_shards)
    if n_shards == 1:
        return 0
    digest = hashlib.blake2b(str(int(store)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def stores_of_shard(stores: Iterable[int], shard: int, n_shards: int) -> list[int]:
    """The ``stores`` that belong to ``shard``, sorted."""
    if not 0 <= shard < check_shards(n_shards):
        raise ValueError(f"shard must be in 0..{n_shards - 1}, got {shard}")
    return sorted(int(s) for s in stores if shard_of(s, n_shards) == shard)


def plan_shards(stores: Iterable[int], n_shards: int) -> dict[int, list[int]]:
    """{shard: its stores} for every shard that has stores (an empty shard needs no task)."""
    plan: dict[int, list[int]] = {}
    for store in sorted(int(s) for s in stores):
        plan.setdefault(shard_of(store, n_shards), []).append(store)
    return dict(sorted(plan.items()))
