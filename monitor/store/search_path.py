"""Whether a PostgreSQL store's search_path (the URL's `options=-csearch_path=...`) names a schema that exists.

PostgreSQL skips a search_path's schemas that do not exist; with none left a session has no schema to create in or
read from, and the store's first statement failed with a message about Alembic's table ("no schema has been
selected to create in ... CREATE TABLE alembic_version") or, for commands that only read, said the database held no
store yet. Asked first, the store names the schemas instead."""

from __future__ import annotations

from sqlalchemy import Connection, text


def missing_schema(conn: Connection) -> str | None:
    """Why `conn`'s search_path leaves it no schema (naming its schemas and how to mend it), or None: it has one
    (the first that exists), or the database is not PostgreSQL."""
    if conn.dialect.name != "postgresql" or conn.execute(text("SELECT current_schema()")).scalar() is not None:
        return None
    path = str(conn.execute(text("SHOW search_path")).scalar())
    database = conn.execute(text("SELECT current_database()")).scalar()
    names = [n.strip() for n in path.split(",") if n.strip() and n.strip() != '"$user"']
    create = f"create it (CREATE SCHEMA {names[0]}) or " if names else ""
    return (f"its search_path ({path}) names no schema that exists in database {database!r}: {create}name one that "
            "exists in the URL's options (options=-csearch_path%3DSCHEMA)")
