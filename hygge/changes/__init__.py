"""A run's changes: rows to upsert plus keys to delete, whoever found them.

Watermark reads, key-set reconciliation (`reconcile`), SQL Server Change Tracking and PostgreSQL
logical decoding (`feed`) all end in one `Changes` value that every store consumes the same way.
"""
