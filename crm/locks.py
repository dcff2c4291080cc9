"""Locks that serialise writers over the same natural keys.

On PostgreSQL, transaction-scoped advisory locks keyed by a hash of each key,
taken in one statement in ascending order so two writers can never deadlock
on them. SQLite needs none: its writers are serialised by the database
(transactions BEGIN IMMEDIATE).
"""

import hashlib

from django.db import connection


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def advisory_lock(keys) -> None:
    """Hold a lock on every key until the current transaction ends."""
    if connection.vendor != "postgresql":
        return
    hashes = sorted({key_hash(key) for key in keys})
    if not hashes:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(%b::bigint[]) AS k ORDER BY 1) AS ordered",
            [hashes],
        )


def customers_lock_shared(ids) -> dict[int, int | None]:
    """Share-lock customer rows (ascending id) and return {id: merged_into_id}.

    A merge holds FOR UPDATE on both customers, so this waits for a running
    merge to commit and then sees its tombstone; once held, no merge can start
    on these customers until our transaction ends.
    """
    ids = sorted(set(ids))
    if not ids:
        return {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT id, merged_into_id FROM customers_customer WHERE id = ANY(%b::bigint[]) ORDER BY id FOR SHARE",
                [ids],
            )
        else:
            placeholders = ", ".join(["%s"] * len(ids))
            cursor.execute(
                f"SELECT id, merged_into_id FROM customers_customer WHERE id IN ({placeholders}) ORDER BY id", ids
            )
        return dict(cursor.fetchall())
