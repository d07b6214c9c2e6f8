"""Commands that run the lake: up, down, migrate, init, new-migration, psql, freshness, compact, verify."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from app.cli import context
from app.cli.table import render
from app.lake import database, project
from app.lake.cluster import find_bindir
from app.lake.migrations import Plan, migrate


def _report(plan: Plan, dry_run: bool) -> None:
    verb = "would" if dry_run else "did"
    if plan.legacy_adopted:
        print(f"{verb} adopt a lake of release 0.1.0 (its history is kept as chain legacy)")
    for m in plan.engine:
        print(f"{verb} apply engine migration {m.name}")
    if plan.code_changed:
        print(f"{verb} install the engine's functions, views, triggers and grants, and regenerate from the catalog")
    for name in plan.dropped:
        print(f"dropped {name} (not in this engine)")
    for m in plan.adopt:
        print(f"{verb} record {m.chain} migration {m.name} (release 0.1.0 applied it as {m.replaces})")
    for m in plan.pending:
        print(f"{verb} apply {m.chain} migration {m.name} ({m.path})")
    if plan.nothing_to_do:
        print("nothing to do: the lake is up to date" + (f" with project {plan.project.name}" if plan.project else ""))


def _status(plan: Plan) -> None:
    rows: list[tuple[object, ...]] = [
        (
            a.chain,
            f"{a.version:04d}",
            a.name,
            "adopted" if a.adopted else "applied",
            f"{a.applied_at:%Y-%m-%d %H:%M:%S}",
        )
        for a in plan.applied
    ]
    rows += [(m.chain, f"{m.version:04d}", m.name, "pending", "") for m in plan.engine + plan.pending]
    rows += [(m.chain, f"{m.version:04d}", m.name, f"pending (adopts {m.replaces})", "") for m in plan.adopt]
    print(render(["chain", "version", "name", "state", "applied_at"], rows))
    print("engine code: " + ("changed, to be installed" if plan.code_changed else "installed, current"))


def cmd_migrate(args: argparse.Namespace) -> int:
    proj = context.chosen_project(args)
    read_only = args.dry_run or args.status
    settings = context.settings(args)
    if read_only and database.uses_embedded(settings) and not database.embedded_cluster(settings).running():
        raise ValueError("the embedded lake is not running (nothing to look at): start it with contextlake up")
    plan = migrate(context.dsn(args, start=not read_only), proj, dry_run=read_only)
    if args.status:
        _status(plan)
    else:
        _report(plan, args.dry_run)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    dsn = context.dsn(args)
    _report(migrate(dsn, context.chosen_project(args)), dry_run=False)
    print(f"lake is up: {dsn}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    settings = context.settings(args)
    if not database.uses_embedded(settings):
        print("DATABASE_URL is set: that server is not ours to stop")
        return 0
    cluster = database.embedded_cluster(settings)
    if not cluster.running():
        print(f"no embedded lake is running in {cluster.home}")
        return 0
    cluster.stop()
    print("embedded lake stopped")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    proj = project.init(Path(args.dir), args.name)
    print(f"created feature project {proj.name} in {proj.root}")
    print(f'next: contextlake new-migration "create landing tables" --project {args.dir}')
    return 0


def cmd_new_migration(args: argparse.Namespace) -> int:
    proj = context.chosen_project(args) or project.load(Path("."))
    path = project.new_migration(proj, args.title)
    print(f"new migration of project {proj.name}; edit it, then run contextlake migrate --project {proj.root}")
    print(path)
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    dsn = context.dsn(args)
    exe = shutil.which("psql") or str(find_bindir(context.settings(args).pg_bindir) / "psql")
    os.execv(exe, [exe, dsn, *args.psql_args])
    return 0  # not reached


def cmd_freshness(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        print("feature freshness (api.feature_freshness)")
        context.print_query(conn, "freshness")
        print("\ningest lag (api.ingest_lag)")
        context.print_query(conn, "ingest_lag")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        context.print_query(conn, "compact")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        print("state recomputed from raw events (lake.verify_state):")
        bad = context.print_query(conn, "verify_state")
        print("\nread path (lake.read_path_problems):")
        bad += context.print_query(conn, "read_path_problems")
    print("\nverify: " + ("MISMATCH" if bad else "every maintained feature equals its recomputation"))
    return 1 if bad else 0


def _project_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--project", type=Path, help="feature project folder (default: CONTEXTLAKE_PROJECT, else none)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("up", help="start the lake (embedded unless DATABASE_URL is set) and migrate it")
    _project_option(sp)
    sp.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the embedded lake").set_defaults(func=cmd_down)
    sp = sub.add_parser(
        "migrate", help="apply the engine's pending migrations and code, then the project's (all or nothing)"
    )
    _project_option(sp)
    sp.add_argument("--status", action="store_true", help="list applied and pending migrations; change nothing")
    sp.add_argument("--dry-run", action="store_true", help="print what would run; change nothing")
    sp.set_defaults(func=cmd_migrate)
    sp = sub.add_parser("init", help="create a feature project: migrations folder, contextlake.toml, README")
    sp.add_argument("dir", help="folder to create the project in")
    sp.add_argument("--name", help="project name (default: from the folder's name)")
    sp.set_defaults(func=cmd_init)
    sp = sub.add_parser("new-migration", help="write the project's next numbered migration; prints its path last")
    sp.add_argument("title", help='what it does, e.g. "add merchant velocity"')
    sp.add_argument("--project", type=Path, help="feature project folder (default: CONTEXTLAKE_PROJECT, else .)")
    sp.set_defaults(func=cmd_new_migration)
    sp = sub.add_parser("psql", help="open psql on the lake")
    sp.usage = "contextlake psql [psql options, e.g. -c 'SELECT * FROM api.feature_freshness']"
    sp.set_defaults(func=cmd_psql)
    sub.add_parser("freshness", help="print per-feature freshness and per-source ingest lag").set_defaults(
        func=cmd_freshness
    )
    sub.add_parser("compact", help="drop raw events and tiles no read needs any more").set_defaults(func=cmd_compact)
    sub.add_parser(
        "verify", help="recompute every maintained feature from raw events; exit 1 on any difference"
    ).set_defaults(func=cmd_verify)
