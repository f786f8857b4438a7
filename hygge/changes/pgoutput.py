"""The few pgoutput messages a key feed needs, parsed from `pg_logical_slot_peek_binary_changes` rows.

pgoutput (PostgreSQL's built-in logical decoding plugin, protocol version 1) writes one message per
row: Begin, Relation, Insert/Update/Delete, Truncate, Commit, plus Origin/Type/Message, which a key
feed ignores. Integers are big-endian, strings NUL-terminated, column values text in the server's
encoding (the session's DateStyle etc. decide their form). Layouts: PostgreSQL's "Logical Replication
Message Formats" (protocol chapter).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


class _Unchanged:
    """A TOASTed value an UPDATE left alone: pgoutput does not send its text."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()
# A column value in a TupleData part: the raw text bytes, None (SQL NULL), or UNCHANGED.
Value = bytes | None | _Unchanged

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


def lsn_value(text: str) -> int:
    """An LSN's number from its text form ('16/B374D848')."""
    high, sep, low = text.strip().partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    """An LSN as fixed-width text ('00000016/B374D848'): valid pg_lsn input, and its string order is its
    numeric order, so journaled positions compare correctly as text too."""
    return f"{value >> 32:08X}/{value & 0xFFFFFFFF:08X}"


@dataclass(frozen=True)
class Column:
    name: str
    is_key: bool  # part of the table's replica identity
    type_oid: int


@dataclass(frozen=True)
class Relation:
    """A table's layout as the decoder sees it; sent before its first change in a decoding session."""

    oid: int
    namespace: str
    name: str
    replica_identity: str  # d(efault) n(othing) f(ull) i(ndex)
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    commit_lsn: int  # "final LSN": where the transaction's commit record starts
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int


@dataclass(frozen=True)
class Change:
    """An insert ('I'), update ('U') or delete ('D') of one row of `relation`.

    `old` is the replica identity's old values (an update that changed a key column, every delete)
    or the whole old row (REPLICA IDENTITY FULL); `new` the new row (inserts and updates)."""

    op: str
    relation: int
    old: tuple[Value, ...] | None
    new: tuple[Value, ...] | None


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]
    cascade: bool
    restart_identity: bool


Message = Relation | Begin | Commit | Change | Truncate

# A change of the one table whose single key is its first column, cut out of the message by the server
# (`key_cut`): the operation ('I', 'U' or 'D') and the key's text. Parsing each message in Python cost
# more than the server's decoding (5.6 µs a message, measured); the cut leaves one small tuple a change.
KeyCut = tuple[str, bytes]


def key_cut(messages: str, relation: int) -> str:
    """A SELECT of (op, key, data) over `messages` (a peek with a `data` column): the operation and key
    text cut out, data NULL; or op and key NULL and the whole message, for `parse`. Cut are an Insert
    ('I' oid 'N' tuple), an Update that kept its key ('U' oid 'N' tuple) and a key Delete ('D' oid 'K'
    tuple) of `relation` whose first column is text ('t'): its kind at byte 8, its length at bytes
    9-12, its text from byte 13 (0-based). Anything else comes whole: an update that changed the key,
    REPLICA IDENTITY FULL's 'O' tuples, other tables and kinds."""
    oid = f"decode('{relation & 0xFFFFFFFF:08x}', 'hex')"  # no backslash: any standard_conforming_strings
    cut = (
        # CASE first: a message shorter than the layout (a Type message can be 7 bytes) is never indexed.
        "CASE WHEN length(data) < 13 THEN false ELSE (get_byte(data, 0) IN (73, 85) AND "
        "get_byte(data, 5) = 78 OR get_byte(data, 0) = 68 AND get_byte(data, 5) = 75) AND "
        f"get_byte(data, 8) = 116 AND substr(data, 2, 4) = {oid} END"
    )
    length = " | ".join(f"(get_byte(data, {9 + i}) << {24 - 8 * i})" for i in range(4))
    return (
        f"SELECT CASE WHEN cut THEN chr(get_byte(data, 0)) END, "
        f"CASE WHEN cut THEN substr(data, 14, {length}) END, CASE WHEN cut THEN NULL ELSE data END "
        f"FROM (SELECT data, {cut} AS cut FROM {messages}) AS m"
    )


class _Reader:
    """A cursor over one message's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1]

    def u16(self) -> int:
        (value,) = _U16.unpack_from(self.data, self.at)
        self.at += 2
        return value

    def u32(self) -> int:
        (value,) = _U32.unpack_from(self.data, self.at)
        self.at += 4
        return value

    def u64(self) -> int:
        (value,) = _U64.unpack_from(self.data, self.at)
        self.at += 8
        return value

    def string(self) -> str:
        end = self.data.index(0, self.at)
        text = self.data[self.at : end].decode("utf-8", errors="surrogateescape")
        self.at = end + 1
        return text


def _tuple(data: bytes, at: int, wanted: tuple[int, ...] | None, last: bool) -> tuple[tuple[Value, ...], int]:
    """A TupleData part at `at` and where it ends; with `wanted`, only those positions in that order (a
    key feed skips the other columns, and stops after the last wanted one when the part ends the
    message)."""
    (count,) = _U16.unpack_from(data, at)
    at += 2
    stop = count if wanted is None or not last else min(count, max(wanted, default=-1) + 1)
    values: list[Value] = []
    for _ in range(stop):
        kind = data[at]
        at += 1
        if kind == 0x74 or kind == 0x62:  # 't' text, 'b' binary (only with the `binary` option)
            (length,) = _U32.unpack_from(data, at)
            at += 4
            values.append(data[at : at + length])
            at += length
        elif kind == 0x6E:  # 'n'
            values.append(None)
        elif kind == 0x75:  # 'u'
            values.append(UNCHANGED)
        else:
            raise ValueError(f"unknown TupleData kind {kind!r}")
    if stop < count:
        at = len(data)  # the rest of the message is the skipped columns
    return (tuple(values) if wanted is None else tuple([values[i] for i in wanted])), at


def _change(data: bytes, keys: Mapping[int, tuple[int, ...]] | None) -> Change:
    """Insert ('I' oid 'N' new), Update ('U' oid ['K'|'O' old] 'N' new) or Delete ('D' oid 'K'|'O' old)."""
    op = chr(data[0])
    (oid,) = _U32.unpack_from(data, 1)
    wanted = keys.get(oid) if keys else None
    if op == "I":
        return Change(op, oid, None, _tuple(data, 6, wanted, True)[0])
    if op == "D":
        return Change(op, oid, _tuple(data, 6, wanted, True)[0], None)
    old, at = None, 5
    if data[at] in (0x4B, 0x4F):  # 'K', 'O'
        old, at = _tuple(data, at + 1, wanted, False)
    if data[at] != 0x4E:  # 'N'
        raise ValueError(f"update message without a new tuple (part {chr(data[at])!r})")
    return Change(op, oid, old, _tuple(data, at + 1, wanted, True)[0])


def parse(data: bytes | memoryview, keys: Mapping[int, tuple[int, ...]] | None = None) -> Message | None:
    """One pgoutput (protocol 1) message; None for the kinds a key feed ignores (Origin, Type,
    logical decoding Message). With `keys` (relation oid -> column positions), a change of a relation
    listed there carries only those columns' values, in that order."""
    data = data if isinstance(data, bytes) else bytes(data)
    if data[0] in (0x49, 0x55, 0x44):  # 'I', 'U', 'D': nearly every message
        return _change(data, keys)
    r = _Reader(data)
    kind = chr(r.byte())
    if kind == "B":
        commit_lsn = r.u64()
        r.u64()  # commit timestamp
        return Begin(commit_lsn, r.u32())
    if kind == "C":
        r.byte()  # flags
        return Commit(r.u64(), r.u64())
    if kind == "R":
        oid = r.u32()
        namespace, name = r.string(), r.string()
        identity = chr(r.byte())
        columns = []
        for _ in range(r.u16()):
            flags = r.byte()
            column_name = r.string()
            type_oid = r.u32()
            r.u32()  # type modifier
            columns.append(Column(column_name, bool(flags & 1), type_oid))
        return Relation(oid, namespace, name, identity, tuple(columns))
    if kind == "T":
        count = r.u32()
        options = r.byte()
        oids = tuple(r.u32() for _ in range(count))
        return Truncate(oids, bool(options & 1), bool(options & 2))
    if kind in ("O", "Y", "M"):
        return None
    raise ValueError(f"unknown pgoutput message kind {kind!r}")
