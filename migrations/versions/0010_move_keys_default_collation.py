"""Moves find their neighbour through the sibling index again: ``prev``/``next`` lose their collation.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

``tasks_move``/``lists_move`` of 0007 declared ``prev`` and ``next`` ``COLLATE "C"`` and passed ``prev``
to ``<table>_next_key`` and ``<table>_renumber``. PostgreSQL then calls those functions with the input
collation "C", and PL/pgSQL gives that collation to *every* collatable parameter, ``owner`` included:
``t.user_id = owner`` compared under "C" cannot use the indexes on ``user_id`` (built under the
database's collation), so each move read the whole table (15-25 ms on 60,000 tasks instead of
0.1 ms). Keys need no collation of their own: every comparison of keys names ``COLLATE "C"`` where it
is made (``position_key_between``, ``<table>_next_key``, and the "already there" test below).

The functions are 0007's text with these lines changed (a migration never changes, so they are
substituted here rather than edited there); the downgrade puts 0007's text back.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_SUBSTITUTIONS = (
    ('    prev text COLLATE "C";\n', "    prev text;\n"),
    ('    next text COLLATE "C";\n', "    next text;\n"),
    (
        "r.position > coalesce(prev, '') AND (next IS NULL OR r.position < next)",
        'r.position > coalesce(prev, \'\') COLLATE "C" AND (next IS NULL OR r.position < next COLLATE "C")',
    ),
)


def _v0007() -> ModuleType:
    path = Path(__file__).with_name("0007_lists_subtasks_order.py")
    spec = importlib.util.spec_from_file_location("_tasks_migration_0007", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _move_functions(fixed: bool) -> list[str]:
    v7 = _v0007()
    texts = [
        v7._move_function(
            "tasks",
            ("list_id", "parent_id"),
            ", list_given boolean, new_list uuid, parent_given boolean, new_parent uuid",
            v7._TASKS_MOVE_RESOLVE,
        ),
        v7._move_function("lists", (), "", ""),
    ]
    out = []
    for text in texts:
        text = text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
        if fixed:
            for old, new in _SUBSTITUTIONS:
                # Fails loudly if 0007's text ever stops holding the line this migration replaces.
                assert old in text, old
                text = text.replace(old, new)
        out.append(text)
    return out


def upgrade() -> None:
    for function in _move_functions(fixed=True):
        op.execute(function)


def downgrade() -> None:
    for function in _move_functions(fixed=False):
        op.execute(function)
