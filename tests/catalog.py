"""The shape of a lake's database, for comparing two lakes: schemas, tables and columns, constraints,
indexes, types, functions (with their text), views, triggers and privileges, in the engine's schemas
and every schema a project added (names only, never oids). Privileges are compared as they take effect:
an object without an explicit ACL has its type's default."""

from __future__ import annotations

from typing import Any

import psycopg

SCHEMAS = "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"

QUERIES = {
    "schemas": f"""
        SELECT n.nspname, coalesce(n.nspacl, acldefault('n', n.nspowner))::text
          FROM pg_namespace n WHERE n.nspname IN ({SCHEMAS}) ORDER BY 1""",
    "relations": f"""
        SELECT c.oid::regclass::text, c.relkind, coalesce(c.relacl, acldefault('r', c.relowner))::text,
               obj_description(c.oid, 'pg_class')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ({SCHEMAS}) AND c.relkind IN ('r', 'v', 'm', 'S', 'p') ORDER BY 1""",
    "columns": f"""
        SELECT a.attrelid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attacl::text
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname IN ({SCHEMAS}) AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'c', 'p')
         ORDER BY 1, 2""",
    "constraints": f"""
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ({SCHEMAS}))
         ORDER BY 1, 2""",
    "indexes": f"""
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
         WHERE schemaname IN ({SCHEMAS}) ORDER BY 1, 2, 3""",
    "types": f"""
        SELECT t.oid::regtype::text, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname IN ({SCHEMAS}) AND t.typtype IN ('c', 'e', 'd') AND t.typrelid IN (0, (
               SELECT c.oid FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')) ORDER BY 1""",
    "functions": f"""
        SELECT p.oid::regprocedure::text, pg_get_function_result(p.oid), md5(p.prosrc), p.provolatile,
               p.prosecdef, p.proconfig::text, coalesce(p.proacl, acldefault('f', p.proowner))::text,
               obj_description(p.oid, 'pg_proc')
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ({SCHEMAS}) ORDER BY 1""",
    "views": f"SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname IN ({SCHEMAS}) ORDER BY 1, 2",
    "triggers": f"""
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid), tgenabled
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT tgisinternal AND n.nspname IN ({SCHEMAS}) ORDER BY 1, 2""",
    "default_privileges": "SELECT defaclrole::regrole::text, defaclobjtype, defaclacl::text FROM pg_default_acl"
    " ORDER BY 1, 2",
}


def snapshot(dsn: str, exclude_schemas: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every part of the catalog above, as sorted rows."""
    with psycopg.connect(dsn) as conn:
        out = {}
        for part, q in QUERIES.items():
            rows = conn.execute(q).fetchall()
            out[part] = [r for r in rows if not any(str(v).startswith(s) for v in r[:1] for s in exclude_schemas)]
        return out


def differences(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    """Rows only one side has, per part (empty when the two are the same)."""
    found = []
    for part in a:
        left, right = set(a[part]), set(b[part])
        found += [f"{part}: only in first: {r}" for r in sorted(left - right, key=str)]
        found += [f"{part}: only in second: {r}" for r in sorted(right - left, key=str)]
    return found
