"""contextlake cdc: the dead letters of change data capture (change events the lake refused and kept):
list them, replay them after a fix, discard those that can never land. As the lake's owner."""

from __future__ import annotations

import argparse
import json

from app.cli import context
from app.cli.table import render
from app.ingest import dead_letters
from app.serve.jsonvalues import plain

COLUMNS = ("id", "first_seen_at", "last_seen_at", "attempts", "upstream_table", "lsn", "op", "reason", "resolution")


def cmd_rejects(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        rows = dead_letters.open_letters(conn, args.id or None, every=args.all)
    if args.json:
        print(json.dumps([{k: plain(v) for k, v in zip((*COLUMNS, "event"), row, strict=True)} for row in rows]))
    else:
        print(render(COLUMNS, [(*row[:7], _short(row[7]), row[8]) for row in rows]))
    return 0


def _short(reason: str, width: int = 100) -> str:
    return reason if len(reason) <= width else reason[: width - 3] + "..."


def cmd_replay(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        outcomes = dead_letters.replay(conn, args.id or None)
    print(render(("id", "outcome", "reason"), [(o.id, o.status, _short(o.reason or "")) for o in outcomes]))
    still = sum(1 for o in outcomes if o.status == "rejected")
    print(f"replayed {len(outcomes)}: {len(outcomes) - still} resolved, {still} still refused")
    return 1 if still else 0


def cmd_discard(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        outcomes = dead_letters.discard(conn, args.id)
    missing = sorted(set(args.id) - {o.id for o in outcomes})
    print(f"discarded {len(outcomes)}" + (f"; not open: {', '.join(map(str, missing))}" if missing else ""))
    return 1 if missing else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("cdc", help="change data capture: list, replay or discard the change events the lake refused")
    actions = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    rejects = actions.add_parser("rejects", help="the refused change events kept in lake.cdc_dead_letters")
    rejects.add_argument("id", type=int, nargs="*", help="only these dead letters")
    rejects.add_argument("--all", action="store_true", help="resolved ones too")
    rejects.add_argument("--json", action="store_true", help="as JSON, with each event as posted")
    rejects.set_defaults(func=cmd_rejects)
    replay = actions.add_parser(
        "replay", help="apply the open dead letters again (after fixing a mapping); exit 1 if some are still refused"
    )
    replay.add_argument("id", type=int, nargs="*", help="only these (default: every open one)")
    replay.set_defaults(func=cmd_replay)
    drop = actions.add_parser("discard", help="resolve dead letters without applying them (kept, marked discarded)")
    drop.add_argument("id", type=int, nargs="+")
    drop.set_defaults(func=cmd_discard)
