"""Small portable SQL helpers for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(
    session: Session, model: type, values: dict[str, Any], conflict: list[str]
) -> int | None:
    """Insert a row unless ``conflict`` columns already match one.

    Returns the new row's id, or None when the row existed. This is how the
    app claims work exactly once across processes: the unique constraint
    decides, not memory.
    """
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = (
        module.insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(model.id)
    )
    return session.execute(statement).scalar_one_or_none()
