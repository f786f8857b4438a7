"""Which change feed an entity reads through (`feed:` in its config), checked against its home."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hygge.changes.feed import ChangeFeed

if TYPE_CHECKING:
    from hygge.config.models import ResolvedEntity


def feed_for(entity: ResolvedEntity, home: object) -> ChangeFeed:
    """The entity's change feed (`feed:` in its config), reading through its SQL home."""
    from hygge.errors import ConfigError
    from hygge.homes.sql.home import SqlHome

    assert entity.feed is not None
    where = {"file": entity.file, "flow": entity.flow, "entity": entity.name, "field": "feed.type"}
    wanted = {"change_tracking": "mssql", "postgres_logical": "postgres"}[entity.feed.type]
    if not isinstance(home, SqlHome) or home.conn.type != wanted or not home.table:
        raise ConfigError(
            f"`feed: {entity.feed.type}` reads a {wanted} table; this entity's home is "
            f"{getattr(home, 'describe', lambda: 'not a SQL table')()}",
            hint=f"use it on a `{wanted}` connection with a table (not a `query:`), or remove `feed:`",
            **where,
        )
    if entity.feed.type == "change_tracking":
        from hygge.changes.mssql_ct import ChangeTrackingFeed

        return ChangeTrackingFeed(entity, home)
    from hygge.changes.pg_logical import LogicalFeed

    return LogicalFeed(entity, home)
