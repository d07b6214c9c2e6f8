"""A bounded property-based fuzz of the service's own OpenAPI schema (schemathesis, over hypothesis): every
operation the live /openapi.json lists is called with generated requests, valid and invalid, against the
app served for real over a migrated lake. No answer is a 5xx, a rejected request (4xx) lands nothing,
and the keep-alive connection it came on stays usable. A fixed seed and a small budget keep it a CI test.

schemathesis's own pytest entry for a schema known only at run time (``schemathesis.pytest.from_fixture``)
does not run under pytest 9.2 (it sets ``Node._nodeid``, which pytest no longer has), so each operation
is run here through its hypothesis strategy (``APIOperation.as_strategy``) under ``@given``."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.lake import registry
from app.settings import Settings
from tests.debezium_events import AUTH_FIELDS, auth_row, payload, with_schema
from tests.onnx_models import constant
from tests.service import new_key, serving

SEED = 20261124
EXAMPLES = 50  # generated requests per operation and mode (valid, invalid)

NOW = datetime.now(UTC).isoformat()
NOW_US = int(time.time() * 1e6)  # upstream times are microseconds since 1970
TXN = {"event_id": "fz-0", "card_id": "c1", "merchant_id": "m1", "amount": 5, "currency": "EUR", "country": "FR",
       "channel": "pos", "event_time": NOW}  # fmt: skip
DECIDED = {k: v for k, v in TXN.items() if k not in ("card_id", "event_time")}  # the decision's time and entity
REQUEST = {"amount": 5, "country": "FR"}  # what the fraud set's on-demand features and rules read

# /v1/cdc/debezium reads its body itself (it takes several formats), so FastAPI documents none. The fuzz
# gives it the schema-less change event of the upstream table the cards example maps, loosely typed
# where Debezium's values are, so generated bodies reach the decoding and the landing and not only the
# JSON parser; with and without the Connect schema wrapper ({"schema": ..., "payload": ...}), whose
# schema part is left loose so that malformed descriptions of the columns are generated too.
CHANGE: dict[str, Any] = {
    "type": "object",
    "required": ["op", "source", "after"],
    "properties": {
        "op": {"enum": ["c", "r", "u", "d", "t", "m"]},
        "ts_ms": {"type": "integer", "minimum": 0},
        "source": {
            "type": "object",
            "required": ["schema", "table", "lsn", "ts_ms"],
            "properties": {
                "schema": {"const": "payments"},
                "table": {"const": "authorizations"},
                "lsn": {"type": "integer", "minimum": 0},
                "ts_ms": {"type": "integer", "minimum": 0},
            },
        },
        "before": {"type": ["object", "null"]},
        "after": {
            "type": "object",
            "required": ["id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "created_at"],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "card_id": {"type": "string", "minLength": 1},
                "merchant_id": {"type": "string"},
                "amount": {"enum": ["AfQ=", "AA==", "/w==", "AJiWgA==", "AfQ", 500]},  # base64, unscaled
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "channel": {"enum": ["pos", "ecom", "atm", "moto", "x"]},
                "created_at": {"type": "integer", "minimum": NOW_US - 10**12, "maximum": NOW_US},  # microseconds
            },
        },
    },
}
WRAPPED: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "payload"],
    "properties": {"schema": {"type": ["object", "null"]}, "payload": CHANGE},
}
ANY_CHANGE: dict[str, Any] = {"anyOf": [CHANGE, WRAPPED]}
CDC_BODY: dict[str, Any] = {"anyOf": [ANY_CHANGE, {"type": "array", "items": ANY_CHANGE, "maxItems": 4}]}

# Every operation of the schema (test_the_fuzz_covers_every_operation_of_the_schema holds the list to it).
OPERATIONS = [
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /v1/features/{feature_set}/{entity}",
    "GET /v1/freshness",
    "POST /v1/score",
    "POST /v1/decide",
    "POST /v1/events",
    "POST /v1/cdc/debezium",
    "GET /v1/models",
]
# Operations with no parameter and no body have no invalid request to generate.
WITH_INPUT = [op for op in OPERATIONS if op.startswith("POST") or "{" in op]

PENDING = re.compile(r"^contextlake_decision_log_pending (\S+)$", re.M)


class Lake:
    """The served app (its client sends an admin key) and the test's own connection to its lake."""

    def __init__(self, client: httpx.Client, conn: psycopg.Connection) -> None:
        self.client = client
        self.conn = conn
        cards = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'cards' AND c.relkind IN ('r', 'p') ORDER BY 1"
        ).fetchall()
        self.tables = [t for (t,) in cards] + ["lake.decisions", "lake.cdc_applied"]
        if conn.execute("SELECT to_regclass('lake.cdc_dead_letters')").fetchone() != (None,):
            self.tables.append("lake.cdc_dead_letters")  # a change refused and kept is landed too
        assert {"cards.transactions", "cards.chargebacks", "cards.profiles"} <= set(self.tables), self.tables
        self._count = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in self.tables)
        self.statuses: dict[int, int] = {}

    def counts(self) -> dict[str, int]:
        row = self.conn.execute(self._count).fetchone()
        assert row is not None
        return dict(zip(self.tables, row, strict=True))

    def settle(self) -> None:
        """Until the decision log has nothing waiting: a decision /v1/score queued is in the lake by then."""
        deadline = time.monotonic() + 10
        while True:
            found = PENDING.search(self.client.get("/metrics").text)
            if found is not None and float(found.group(1)) == 0:
                return
            assert time.monotonic() < deadline, "the decision log did not drain"
            time.sleep(0.01)

    def send(self, case: schemathesis.Case) -> httpx.Response:
        """The generated request, over the client's keep-alive connection (with its key)."""
        kw = case.as_transport_kwargs(base_url=str(self.client.base_url))
        headers = dict(kw.get("headers") or {})
        if kw.get("cookies"):  # httpx takes cookies per client only
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in kw["cookies"].items())
        request = self.client.build_request(
            kw["method"],
            kw["url"],
            params=kw.get("params"),
            headers=headers,
            json=kw.get("json"),
            content=kw.get("data"),
        )
        return self.client.send(request)


def local_address(response: httpx.Response) -> Any:
    """The client's end of the connection a response came on."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


@pytest.fixture
def lake_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
def lake(dsn: str, conn: psycopg.Connection, lake_settings: dict[str, Any]) -> Iterator[Lake]:
    k = conn.execute("SELECT count(*) FROM lake.model_inputs('fraud', 1) WHERE usable").fetchone()[0]  # type: ignore[index]
    registry.register_model(conn, "fraud", constant(k, 0.2), "fraud", status="active")
    # A short log interval: the fuzz waits for each scored decision to be written before the next request.
    settings_ = Settings(database_url=dsn, log_interval=0.01, **lake_settings)
    with serving(settings_, new_key(dsn, "score", "ingest", "admin")) as client:
        yield Lake(client, conn)


def fuzz_schema(lake: Lake) -> schemathesis.BaseSchema:
    """The live schema, with a body for the CDC route, and requests steered to the lake's own names."""
    raw = lake.client.get("/openapi.json").json()
    raw["paths"]["/v1/cdc/debezium"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": CDC_BODY}},
    }
    schema = schemathesis.openapi.from_dict(raw, config=schemathesis.Config())
    schema.config.update(base_url=str(lake.client.base_url))

    # A generated name is almost never the lake's (a 404 at once), and a generated event's keys never
    # its columns: some requests are steered to its model, feature set and source, with the generated
    # values put in a valid transaction's columns, so they reach the reads, the scoring and the landing.
    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        path = context.operation.path if context.operation is not None else ""
        if not isinstance(body, dict) or path not in ("/v1/score", "/v1/decide", "/v1/events"):
            return st.just(body)
        named = {**body, "model": "fraud", "feature_set": None}
        if path == "/v1/score":
            steered = onto(REQUEST, body.get("request")).map(lambda request: {**named, "request": request})
        elif path == "/v1/decide":
            steered = onto(DECIDED, body.get("event")).map(lambda event: {**named, "source": None, "event": event})
        else:
            envelope = {"source": "card_txn", "atomic": body.get("atomic") is True}
            if isinstance(body.get("events"), list) and body["events"]:
                # A valid transaction of a new id beside the generated ones: batches that land in part.
                fresh = st.uuids().map(lambda u: {**TXN, "event_id": str(u)})
                batch = [fresh, *(onto({**TXN, "event_id": f"fz-{i}"}, e) for i, e in enumerate(body["events"]))]
                steered = st.tuples(*batch).map(lambda events: {**envelope, "events": list(events)})
            else:
                steered = onto(TXN, body.get("event")).map(lambda event: {**envelope, "event": event})
        return st.one_of(st.just(body), steered)

    @schema.hook
    def flatmap_path_parameters(context: schemathesis.HookContext, params: Any) -> st.SearchStrategy[Any]:
        if isinstance(params, dict) and "feature_set" in params:
            return st.sampled_from([params, {**params, "feature_set": "fraud"}])
        return st.just(params)

    return schema


def onto(template: dict[str, Any], generated: Any) -> st.SearchStrategy[dict[str, Any]]:
    """The template with the values of a generated object in some of its keys (and the object itself
    when it is not one: the route names what it cannot read)."""
    if not isinstance(generated, dict):
        return st.just(template if generated is None else generated)
    values = list(generated.values())
    return st.permutations(list(template)).map(lambda keys: {**template, **dict(zip(keys, values, strict=False))})


def operations(schema: schemathesis.BaseSchema) -> dict[str, schemathesis.APIOperation]:
    return {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}


def may_land(response: httpx.Response, path: str) -> dict[str, range]:
    """What a rejected request may have landed, per table: nothing, but for a Debezium batch answered 422
    with the changes it could not apply (CONTEXTLAKE_CDC_REJECTS=refuse), whose other changes are
    committed (Debezium redelivers the batch, and those apply nothing twice): the changes it counts as
    landed, and their source positions (with those of the changes it ignored or found landed by another
    path)."""
    body = response.json() if path == "/v1/cdc/debezium" and response.status_code == 422 else None
    if not isinstance(body, dict) or "rejected" not in body:
        return {}
    applied = body["landed"] + body["ignored"] + body["duplicate"]
    return {"cards.transactions": range(body["landed"], body["landed"] + 1), "lake.cdc_applied": range(applied + 1)}


def check(lake: Lake, case: schemathesis.Case) -> None:
    """One generated request: never a 5xx; a 4xx lands nothing and leaves its connection usable."""
    before = lake.counts()
    response = lake.send(case)
    status = response.status_code
    lake.statuses[status] = lake.statuses.get(status, 0) + 1
    assert status < 500, f"{status} {response.text[:500]}\n{case.as_curl_command()}"
    if status >= 400:
        lake.settle()
        after = lake.counts()
        allowed = may_land(response, case.path)
        grown = {t: after[t] - before[t] for t in lake.tables}
        wrong = {t: n for t, n in grown.items() if n not in allowed.get(t, range(1))}
        assert not wrong, f"{status} {response.text[:300]} landed {wrong}\n{case.as_curl_command()}"
        again = lake.client.get("/healthz")
        assert again.status_code == 200
        assert local_address(again) == local_address(response), f"the connection was not kept after a {status}"
    elif case.path == "/v1/score":  # its decision is logged behind the answer: in the lake before the next request
        decision = response.json()["decision_id"]
        deadline = time.monotonic() + 10
        while lake.conn.execute("SELECT FROM lake.decisions WHERE decision_id = %s", (decision,)).fetchone() is None:
            assert time.monotonic() < deadline, f"decision {decision} was never logged"
            time.sleep(0.01)


def fuzz(lake: Lake, operation: str, mode: GenerationMode) -> dict[int, int]:
    """Run the budget of one operation in one mode; the statuses it met."""
    op = operations(fuzz_schema(lake))[operation]

    @given(case=op.as_strategy(generation_mode=mode))
    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def requests(case: schemathesis.Case) -> None:
        check(lake, case)

    requests()
    return lake.statuses


def test_the_fuzz_covers_every_operation_of_the_schema(lake: Lake) -> None:
    assert sorted(operations(fuzz_schema(lake))) == sorted(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_valid_requests_never_get_a_5xx_and_a_rejected_one_lands_nothing(lake: Lake, operation: str) -> None:
    statuses = fuzz(lake, operation, GenerationMode.POSITIVE)
    assert statuses, "no request was sent"
    if operation in WITH_INPUT:  # the steering works: the fuzz got past the names into the routes
        assert any(200 <= s < 300 for s in statuses), statuses


@pytest.mark.parametrize("operation", WITH_INPUT)
def test_invalid_requests_never_get_a_5xx_and_land_nothing(lake: Lake, operation: str) -> None:
    statuses = fuzz(lake, operation, GenerationMode.NEGATIVE)
    assert statuses and any(400 <= s < 500 for s in statuses), statuses


@pytest.mark.parametrize("lake_settings", [{"cdc_rejects": "refuse"}])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_a_refused_debezium_batch_lands_only_the_changes_it_counts(lake: Lake, mode: GenerationMode) -> None:
    statuses = fuzz(lake, "POST /v1/cdc/debezium", mode)
    assert statuses.get(422), statuses


def response_at(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response off a connection: status, headers, body (by its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection was closed after {data[:200]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "the connection was closed inside a body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def test_a_keep_alive_connection_stays_usable_after_every_kind_of_4xx(lake: Lake, dsn: str) -> None:
    key = lake.client.headers["Authorization"]
    score_only = f"Bearer {new_key(dsn, 'score')}"

    def post(path: str, body: bytes, auth: str | None = key) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + (f"Authorization: {auth}\r\n" if auth else "")
            + "\r\n"
        ).encode() + body

    event = json.dumps({"source": "card_txn", "event": TXN}).encode()
    rejected = [
        (401, post("/v1/events", event, auth=None)),  # answered before the body is read: it is still on the wire
        (401, post("/v1/events", event, auth="Bearer clk_000000000000_" + "0" * 64)),
        (403, post("/v1/events", event, auth=score_only)),
        (404, post("/v1/score", b'{"model": "nope", "entity": "c1"}')),
        (404, f"GET /v1/nope HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n\r\n".encode()),
        (405, f"GET /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n\r\n".encode()),
        (422, post("/v1/events", b"{")),
        (422, post("/v1/score", b"{}")),
        (422, post("/v1/cdc/debezium", b'[{"op": "c"')),
        (400, post("/v1/cdc/debezium", b"[" * 3000 + b"]" * 3000)),
        (413, post("/v1/score", b" " * (2**20 + 1))),  # refused by its Content-Length, then sent whole
    ]
    url = httpx.URL(str(lake.client.base_url))
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        for expected, request in rejected:
            sock.sendall(request)
            status, headers, _ = response_at(sock)
            assert status == expected and headers.get("connection") != "close", (request[:60], status, headers)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = response_at(sock)
            assert (status, json.loads(body)) == (200, {"status": "ok"}), (request[:60], status, body)
    assert lake.counts()["cards.transactions"] == 0


def change(lsn: int, i: int) -> dict[str, Any]:
    """A create of payments.authorizations, as the connector sends it."""
    return payload("c", lsn, 1_764_000_000_000, after=auth_row(i, "c1", "12.50", datetime.now(UTC)))


def amount_as(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The authorizations' Connect fields with the amount's spec replaced."""
    return [{**spec, "field": "amount"} if f["field"] == "amount" else f for f in AUTH_FIELDS]


DECIMAL = "org.apache.kafka.connect.data.Decimal"


def malformed(kind: str) -> dict[str, Any]:
    good = with_schema(change(10, 1))
    if kind == "the envelope's fields are not a list":
        return {**good, "schema": {**good["schema"], "fields": 5}}
    if kind == "the row's fields are not a list":
        fields = [{**f, "fields": 7} if f["field"] == "after" else f for f in good["schema"]["fields"]]
        return {**good, "schema": {**good["schema"], "fields": fields}}
    if kind == "a column name that is not text":
        return with_schema(change(10, 1), [{**f, "field": [f["field"]]} for f in AUTH_FIELDS])
    if kind == "a type name that is not text":
        return with_schema(change(10, 1), amount_as({"type": "bytes", "name": 5}))
    if kind == "decimal parameters that are not an object":
        return with_schema(change(10, 1), amount_as({"type": "bytes", "name": DECIMAL, "parameters": "2"}))
    if kind == "a decimal scale out of range":
        return with_schema(
            change(10, 1), amount_as({"type": "bytes", "name": DECIMAL, "parameters": {"scale": "9" * 11}})
        )
    assert kind == "a variable scale out of range"
    ev = with_schema(change(10, 1), amount_as({"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"}))
    ev["payload"]["after"]["amount"] = {"scale": 10**30, "value": "BOI="}
    return ev


@pytest.mark.parametrize(
    "kind",
    [
        "the envelope's fields are not a list",
        "the row's fields are not a list",
        "a column name that is not text",
        "a type name that is not text",
        "decimal parameters that are not an object",
        "a decimal scale out of range",
        "a variable scale out of range",
    ],
)
def test_a_malformed_connect_schema_is_a_rejected_change_not_a_500(lake: Lake, kind: str) -> None:
    r = lake.client.post("/v1/cdc/debezium", json=[malformed(kind), with_schema(change(20, 2))])
    assert r.status_code in (200, 422), r.text  # kept as a dead letter, or refused (CONTEXTLAKE_CDC_REJECTS)
    body = r.json()
    assert body["landed"] == 1 and [x["index"] for x in body["rejected"]] == [0], body
    assert "amount" in body["rejected"][0]["reason"] or "fields" in body["rejected"][0]["reason"], body
    assert lake.conn.execute("SELECT event_id FROM cards.transactions").fetchall() == [("a2",)]
