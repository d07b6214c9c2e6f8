"""The admin commands of the CLI: the model registry (``contextlake model ...``) and API keys
(``contextlake key ...``). They run as the lake's owner (DATABASE_URL or the embedded lake)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

from app.cli import context
from app.cli.table import render
from app.lake import registry
from app.lake.queries import query
from app.serve.auth import SCOPES


def _print(conn: psycopg.Connection, name: str) -> None:
    cur = conn.execute(query(name))
    print(render([d.name for d in cur.description or []], cur.fetchall()))


def model(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        if args.action == "list":
            _print(conn, "list_models")
        elif args.action == "register":
            out = registry.register_model(
                conn,
                args.name,
                Path(args.file).read_bytes(),
                args.feature_set,
                version=args.version,
                feature_set_version=args.feature_set_version,
                features=args.features.split(",") if args.features else None,
                review_at=args.review_at,
                decline_at=args.decline_at,
                status=args.status,
            )
            print(
                f"registered model {out['name']} v{out['version']} ({out['status']}), sha256 {out['sha256'][:12]}, "
                f"inputs: {', '.join(out['features'])}"
            )
        else:
            status = {"activate": "active", "shadow": "shadow", "retire": "retired"}[args.action]
            out = registry.set_model_status(conn, args.name, args.version, status)
            print(f"model {out['name']} v{out['version']} is {out['status']}")
    return 0


def key(args: argparse.Namespace) -> int:
    with context.connect(args) as conn:
        if args.action == "list":
            _print(conn, "list_api_keys")
        elif args.action == "create":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            if args.key_from_env:
                given = os.environ.get(args.key_from_env)
                if not given:
                    print(f"contextlake: {args.key_from_env} is not set", file=sys.stderr)
                    return 2
                key_id = registry.import_api_key(conn, args.name, scopes, given)
                print(f"key {key_id} ({', '.join(scopes)}) registered from {args.key_from_env}")
                return 0
            key_id, api_key = registry.create_api_key(conn, args.name, scopes)
            print(f"key {key_id} ({', '.join(scopes)}); shown once, keep it:\n{api_key}")
        else:
            if not registry.revoke_api_key(conn, args.key_id):
                print(f"no active key {args.key_id}")
                return 1
            print(f"key {args.key_id} revoked")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("model", help="model registry: register, list, activate, shadow, retire")
    add_model_parser(sp)
    sp.set_defaults(func=model)
    sp = sub.add_parser("key", help="API keys: create, revoke, list")
    add_key_parser(sp)
    sp.set_defaults(func=key)


def add_model_parser(sp: argparse.ArgumentParser) -> None:
    actions = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    reg = actions.add_parser("register", help="register an ONNX model (checked against its feature set)")
    reg.add_argument("file", help="the .onnx file")
    reg.add_argument("--name", required=True, help="model name")
    reg.add_argument("--feature-set", required=True, help="feature set the model consumes")
    reg.add_argument("--feature-set-version", type=int, help="its version (default: the latest)")
    reg.add_argument("--version", type=int, help="model version (default: the next one)")
    reg.add_argument("--features", help="input features in input order, comma-separated (default: every numeric one)")
    reg.add_argument("--review-at", type=float, default=0.5, help="score from which to review (default 0.5)")
    reg.add_argument("--decline-at", type=float, default=0.9, help="score from which to decline (default 0.9)")
    reg.add_argument(
        "--status", choices=["shadow", "active", "retired"], default="shadow", help="initial status (default shadow)"
    )
    actions.add_parser("list", help="every registered model version")
    for action, help_text in (
        ("activate", "make a version the one that decides (the previous active one is retired)"),
        ("shadow", "score a version beside the active one, logged, never deciding"),
        ("retire", "stop serving a version"),
    ):
        a = actions.add_parser(action, help=help_text)
        a.add_argument("name")
        a.add_argument("version", type=int)


def add_key_parser(sp: argparse.ArgumentParser) -> None:
    actions = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create an API key (printed once)")
    create.add_argument("name", help="who or what the key is for")
    create.add_argument("--scopes", default="score", help=f"comma-separated, among {', '.join(SCOPES)} (default score)")
    create.add_argument(
        "--key-from-env", metavar="VAR", help="register the key in this environment variable instead of making one"
    )
    revoke = actions.add_parser("revoke", help="revoke a key (effective at once in running services)")
    revoke.add_argument("key_id")
    actions.add_parser("list", help="every key (ids, names, scopes; never the secret)")
