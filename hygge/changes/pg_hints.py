"""What went wrong with a PostgreSQL feed's server or table, and the statement that fixes it."""

from __future__ import annotations

from hygge.errors import SourceError


def check_wal_level(value: str) -> None:
    """Logical decoding needs `wal_level = logical`; anything else is a clear error naming the fix."""
    if value.strip().lower() != "logical":
        raise SourceError(
            f"logical decoding needs the server setting wal_level = logical; this server has "
            f"wal_level = {value}",
            hint="set wal_level = logical (`ALTER SYSTEM SET wal_level = logical`, or the server "
            "parameter on Azure Database for PostgreSQL) and restart the server: wal_level only changes "
            "at a restart",
            field="feed.type",
        )


def identity_problem(qualified: str, identity: str, columns: tuple[str, ...], missing: list[str]) -> str:
    """Why a table's replica identity cannot name the entity's keys in its deletes."""
    if identity == "n":
        return f"table {qualified} has REPLICA IDENTITY NOTHING: its deletes carry no key"
    if not columns:
        return (
            f"table {qualified} has no primary key, so logical decoding cannot name the keys of its deletes "
            "(and adding it to a publication would make its UPDATE and DELETE statements fail)"
        )
    return (
        f"key column(s) {', '.join(missing)} of this entity are not in the replica identity of {qualified} "
        f"({', '.join(columns)}): deletes would not carry them"
    )


def slot_hint(exc: BaseException) -> str | None:
    """The fix for a refused slot operation (privilege, slot limit, busy slot, lost publication)."""
    text = str(exc).lower()
    if "permission denied" in text or "must be superuser or replication role" in text:
        return (
            "the connection's role needs the REPLICATION attribute: `ALTER ROLE <role> WITH REPLICATION` "
            "(on Azure Database for PostgreSQL, run it as the admin user)"
        )
    if "all replication slots are in use" in text or "max_replication_slots" in text:
        return (
            "raise max_replication_slots and restart, or drop unused slots "
            "(`SELECT slot_name, active FROM pg_replication_slots`)"
        )
    if "publication" in text and "does not exist" in text:
        return (
            "the publication was dropped, or created after changes the slot still holds: drop the slot "
            "(`SELECT pg_drop_replication_slot('<slot>')`); the next run reports the window expired and "
            "reloads in full"
        )
    if "is active for pid" in text:
        return "another process is reading this slot; give each feed its own `feed.slot`"
    if "wal_level" in text:
        return "set wal_level = logical and restart the server"
    return None


def privilege_hint(exc: BaseException, name: str, qualified: str) -> str | None:
    """The fix for a refused CREATE/ALTER PUBLICATION."""
    text = str(exc).lower()
    if "must be owner" in text:
        return (
            f'the table\'s owner creates the publication once: `CREATE PUBLICATION "{name}" FOR TABLE '
            f"{qualified}` (hygge then only reads it)"
        )
    if "permission denied for database" in text:
        return "grant the role CREATE on the database: `GRANT CREATE ON DATABASE <db> TO <role>`"
    return None
