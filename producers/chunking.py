"""Splitting long columns and tables so that each event stays under Kafka's message limit.

A ``log_list`` or ``log_table`` call may carry more than one message can hold;
it is sent as consecutive events of the same name, split by rows, each at most
:data:`~producers.emitter.MAX_MESSAGE_BYTES` when encoded (numbers cost about
10 bytes, text about 4 bytes a character plus 8).
"""

from __future__ import annotations

from schemas.records import Column

from .emitter import MAX_MESSAGE_BYTES

__all__ = ["column_chunks", "column_size", "table_chunks"]


def column_chunks(column: Column) -> list[Column]:
    """Split a long column so each message stays under the Kafka limit (consecutive events, same name)."""
    n = len(column.numbers)
    text_cost = sum(4 * len(t) + 8 for t in column.texts)
    if n * 10 + text_cost <= MAX_MESSAGE_BYTES:
        return [column]
    out: list[Column] = []
    texts = dict(zip(column.text_pos, column.texts))
    start = 0
    while start < n:
        budget = MAX_MESSAGE_BYTES
        end = start
        while end < n:
            cost = 10 + (4 * len(texts[end]) + 8 if end in texts else 0)
            if end > start and cost > budget:
                break
            budget -= cost
            end += 1
        pos = [p - start for p in column.text_pos if start <= p < end]
        vals = [texts[p] for p in column.text_pos if start <= p < end]
        out.append(Column(column.name, column.numbers[start:end], pos, vals))
        start = end
    return out


def column_size(column: Column) -> int:
    """The buffer bytes a column is charged for (8 per number plus its text)."""
    return len(column.numbers) * 8 + sum(len(t) for t in column.texts) + 32


def table_chunks(columns: list[Column], rows: int) -> list[list[Column]]:
    """Split a table by rows so each TableLogged message stays under the Kafka limit."""
    per_row = sum(10 for _ in columns)
    text_total = sum(4 * len(t) + 8 for c in columns for t in c.texts)
    if rows * per_row + text_total <= MAX_MESSAGE_BYTES:
        return [columns]
    texts = [dict(zip(c.text_pos, c.texts)) for c in columns]
    out: list[list[Column]] = []
    start = 0
    while start < rows:
        budget = MAX_MESSAGE_BYTES
        end = start
        while end < rows:
            cost = per_row + sum(4 * len(t[end]) + 8 for t in texts if end in t)
            if end > start and cost > budget:
                break
            budget -= cost
            end += 1
        part = []
        for column, text in zip(columns, texts):
            pos = [p - start for p in column.text_pos if start <= p < end]
            part.append(Column(column.name, column.numbers[start:end], pos, [text[p + start] for p in pos]))
        out.append(part)
        start = end
    return out
