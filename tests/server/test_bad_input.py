"""Bad input everywhere: always a 4xx with the `{"error", "message"}` envelope, never a 5xx."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import Agent, assert_error, connect_agents, register
from tests.servers import ServerThread

KIB = 1024
REQUEST_LIMIT = 256 * KIB
NESTING = 10_000
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]*$")

# Placeholders filled in per test: a connected peer's name, a fresh unused name.
PEER = "<peer>"
FRESH = "<fresh>"


@dataclass(frozen=True)
class Raw:
    """Bytes sent as they are, with `content-type: application/json`."""

    data: bytes


@pytest.fixture(scope="module")
def connected_keys(server: ServerThread) -> tuple[Agent, Agent]:
    """Two connected agents, made once per backend (their own HTTP client is closed later)."""
    a, b = register(server.url, "bad"), register(server.url, "bad")
    connect_agents(a, b)
    return a, b


@pytest.fixture
def pair(
    server: ServerThread, connected_keys: tuple[Agent, Agent]
) -> Iterator[tuple[Agent, Agent]]:
    """The module's connected agents with an HTTP client for this test."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        a, b = connected_keys
        yield dataclasses.replace(a, http=http), dataclasses.replace(b, http=http)


def _fill(body: Any, peer: str) -> Any:
    """The body with top-level placeholder values filled in."""

    def one(value: Any) -> Any:
        if isinstance(value, str) and value == PEER:
            return peer
        if isinstance(value, str) and value == FRESH:
            return f"fresh-{uuid.uuid4().hex[:12]}"
        return value

    if isinstance(body, dict):
        return {k: one(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_fill(v, peer) if isinstance(v, dict) else one(v) for v in body]
    return one(body)


def _post(agent: Agent, path: str, body: Any, peer: str) -> httpx.Response:
    if isinstance(body, Raw):
        data = body.data
    else:
        data = json.dumps(_fill(body, peer)).encode()
    return agent.http.post(
        path, content=data, headers={**agent.auth, "content-type": "application/json"}
    )


def _never_5xx(response: httpx.Response) -> None:
    """Fail on a 5xx without a source traceback.

    The server thread logs the 500's traceback while pytest would format this failure;
    on CPython 3.11 both use the `ast` module, whose shared recursion counter is not
    thread-safe ("SystemError: AST constructor recursion depth mismatch" -> INTERNALERROR
    that aborts the whole run). A plain message avoids pytest's `ast` use.
    """
    if response.status_code >= 500:
        pytest.fail(
            f"server error {response.status_code} for {response.request.method} "
            f"{response.request.url.path}: {response.text[:300]}",
            pytrace=False,
        )


def assert_envelope(
    response: httpx.Response, status: int | None = None, code: str | None = None
) -> None:
    """A 4xx (never 5xx) whose JSON body is exactly `{"error", "message"}`, both non-empty."""
    _never_5xx(response)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["error"], str) and ERROR_CODE.match(body["error"]), body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    if code is not None:
        assert body["error"] == code, body


# --- the endpoints with a body, a valid-looking base body and the type of every field --------

ENDPOINTS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "/agents/register": ({"name": FRESH}, {"name": "str", "description": "str"}),
    "/connections/request": (
        {"target_agent_name": PEER},
        {"target_agent_name": "str", "message": "str"},
    ),
    "/connections/approve": ({"verification_code": "AB-123"}, {"verification_code": "str"}),
    "/connections/reject": ({"request_id": "no-such-request"}, {"request_id": "str"}),
    # A fresh name, never the connected peer: blocking it would revoke the module's pair.
    "/connections/blocks": ({"agent_name": FRESH}, {"agent_name": "str"}),
    "/messages/send": (
        {"to": PEER, "content": "hello", "subject": "s"},
        {
            "to": "str",
            "content": "str",
            "subject": "str",
            "session_id": "str",
            "correlation_id": "str",
            "idempotency_key": "str",
            "encrypted": "bool",
            "encryption": "object",
        },
    ),
    "/inbox/ack": ({"up_to_seq": 0}, {"up_to_seq": "int", "message_ids": "list"}),
    "/directory/register": (
        {
            "public_key": "-----BEGIN PUBLIC KEY-----",
            "algorithm": "ed25519",
            "key_version": 1,
            "openpgp_public_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        },
        {
            "public_key": "str",
            "algorithm": "str",
            "key_version": "int",
            "openpgp_public_key": "str",
        },
    ),
}

# Wrong values for each kind of field (strict typing: no coercion).
WRONG_VALUES: dict[str, list[tuple[str, Any]]] = {
    "str": [("int", 12345), ("object", {"a": "b"}), ("list", ["x"]), ("bool", True)],
    "bool": [("string", "true"), ("int", 1), ("object", {})],
    "int": [("string", "5"), ("float", 1.5), ("bool", True), ("object", {})],
    "list": [("string", "id-1"), ("object", {"id": "x"}), ("int", 3)],
    "object": [("string", "openpgp"), ("int", 1), ("list", ["openpgp"])],
}

# Values over a bound (or under one), per endpoint and field.
OUT_OF_BOUNDS: dict[str, list[tuple[str, Any]]] = {
    "/agents/register": [
        ("name", "a" * 33),
        ("name", ""),
        ("description", "d" * 501),
    ],
    "/connections/request": [
        ("target_agent_name", "t" * 33),
        ("target_agent_name", "Not-A-Name"),
        ("message", "m" * 1001),
    ],
    "/connections/approve": [("verification_code", "A" * 33), ("verification_code", "")],
    "/connections/reject": [("request_id", "r" * 65), ("request_id", "")],
    "/connections/blocks": [
        ("agent_name", "a" * 33),
        ("agent_name", "Not-A-Name"),
        ("agent_name", ""),
    ],
    "/messages/send": [
        ("to", "t" * 33),
        ("content", ""),
        ("subject", "s" * 201),
        ("session_id", "s" * 65),
        ("session_id", ""),
        ("correlation_id", "c" * 129),
        ("correlation_id", ""),
        ("idempotency_key", "k" * 129),
        ("idempotency_key", ""),
        ("encryption", {"algorithm": "rsa", "format": "armored"}),
        ("encryption", {"algorithm": "openpgp", "format": "binary"}),
        ("encryption", {"algorithm": "openpgp", "format": "armored", "extra": 1}),
    ],
    "/inbox/ack": [
        ("up_to_seq", -1),
        ("up_to_seq", 2**62 + 1),
        ("up_to_seq", 2**70),
        ("message_ids", []),
        ("message_ids", ["x"] * 501),
        ("message_ids", ["i" * 65]),
        ("message_ids", [""]),
        ("message_ids", [1, 2]),
    ],
    "/directory/register": [
        ("public_key", "p" * (16 * KIB + 1)),
        ("public_key", ""),
        ("algorithm", "a" * 33),
        ("key_version", 0),
        ("key_version", 1_000_001),
        ("openpgp_public_key", "o" * (64 * KIB + 1)),
        ("openpgp_public_key", ""),
    ],
}


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _generic_bodies(path: str) -> list[tuple[str, Any, int | None, str | None]]:
    """Bodies that are wrong for any endpoint: (id, body, status or None, code or None)."""
    base, _fields = ENDPOINTS[path]
    first = next(iter(base))
    big = {**base, first: "x" * (REQUEST_LIMIT + KIB)}
    return [
        ("not-json", Raw(b"this is not json"), 422, "validation_error"),
        ("truncated-json", Raw(b'{"' + first.encode() + b'": '), 422, "validation_error"),
        # Not UTF-8, so not JSON: the same answer on the FastAPI routes and the send fast path.
        (
            "invalid-utf8",
            Raw(b'{"' + first.encode() + b'": "\xff\xfe\xfd"}'),
            422,
            "validation_error",
        ),
        ("empty-body", Raw(b""), 422, "validation_error"),
        ("json-null", None, 422, "validation_error"),
        ("json-number", 42, 422, "validation_error"),
        ("json-string", "hello", 422, "validation_error"),
        ("json-array", [base], 422, "validation_error"),
        ("json-true", True, 422, "validation_error"),
        (
            "lone-surrogate",
            Raw(b'{"' + first.encode() + b'": "a\\ud800b"}'),
            422,
            "validation_error",
        ),
        ("nan", Raw(b'{"' + first.encode() + b'": NaN}'), 422, "validation_error"),
        ("huge-integer", Raw(b'{"' + first.encode() + b'": 1' + b"0" * 5000 + b"}"), None, None),
        ("nested-arrays", Raw(_nested(NESTING)), None, None),
        (
            "nested-arrays-in-field",
            Raw(b'{"' + first.encode() + b'": ' + _nested(NESTING) + b"}"),
            None,
            None,
        ),
        (
            "nested-objects-in-field",
            Raw(
                b'{"' + first.encode() + b'": ' + b'{"a":' * NESTING + b"1" + b"}" * NESTING + b"}"
            ),
            None,
            None,
        ),
        ("nested-500-in-field", {**base, first: json.loads(_nested(500))}, 422, None),
        ("unknown-field", {**base, "unexpected": "x"}, 422, "validation_error"),
        ("from-agent-field", {**base, "from_agent": "mallory"}, 422, "validation_error"),
        ("over-request-limit", big, 413, "payload_too_large"),
    ]


def _body_cases() -> Iterator[Any]:
    for path, (base, fields) in ENDPOINTS.items():
        for case_id, body, status, code in _generic_bodies(path):
            # An early 413 resets the upload; through a proxy that reset can destroy the
            # answer, so a deployment's proxy bounds bodies itself (deploy/nginx.conf).
            marks = [pytest.mark.direct_only] if case_id == "over-request-limit" else []
            yield pytest.param(path, body, status, code, id=f"{path}:{case_id}", marks=marks)
        if path not in ("/inbox/ack",):
            yield pytest.param(path, {}, 422, "validation_error", id=f"{path}:empty-object")
        for field, kind in fields.items():
            for wrong_id, wrong in WRONG_VALUES[kind]:
                body = {**base, field: wrong}
                yield pytest.param(
                    path, body, 422, "validation_error", id=f"{path}:{field}={wrong_id}"
                )
            if field in base and field != "subject":  # a null subject is subject_required
                yield pytest.param(
                    path,
                    {**base, field: None},
                    422,
                    "validation_error",
                    id=f"{path}:{field}=null",
                )
        for index, (field, value) in enumerate(OUT_OF_BOUNDS[path]):
            yield pytest.param(
                path,
                {**base, field: value},
                422,
                "validation_error",
                id=f"{path}:{field}-bound-{index}",
            )


@pytest.mark.parametrize(("path", "body", "status", "code"), list(_body_cases()))
def test_a_bad_body_is_a_4xx_envelope(
    pair: tuple[Agent, Agent],
    path: str,
    body: Any,
    status: int | None,
    code: str | None,
) -> None:
    a, b = pair
    response = _post(a, path, body, b.name)
    assert_envelope(response, status, code)


# --- bodies that only make sense for one endpoint -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({}, 422, "validation_error", id="neither-field"),
        pytest.param(
            {"up_to_seq": 1, "message_ids": ["x"]}, 422, "validation_error", id="both-fields"
        ),
        pytest.param({"message_ids": ["not-mine"]}, 404, "not_found", id="unknown-ids"),
    ],
)
def test_a_bad_ack_is_a_4xx_envelope(
    pair: tuple[Agent, Agent], body: Any, status: int, code: str
) -> None:
    a, _ = pair
    assert_envelope(a.post("/inbox/ack", body), status, code)


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        pytest.param({"content": "a" * (64 * KIB + 1)}, 413, "payload_too_large", id="ascii"),
        # 30,000 characters but 90,000 bytes: the limit is on bytes.
        pytest.param({"content": "€" * 30_000}, 413, "payload_too_large", id="multibyte"),
        pytest.param({"subject": None}, 422, "subject_required", id="no-subject"),
        pytest.param({"subject": "   "}, 422, "subject_required", id="blank-subject"),
        pytest.param(
            {"session_id": "no-such-session"}, 404, "session_not_found", id="unknown-session"
        ),
        pytest.param(
            {"encryption": {"algorithm": "openpgp", "format": "armored"}},
            422,
            "validation_error",
            id="encryption-without-encrypted",
        ),
        pytest.param({"encrypted": True}, 409, "peer_missing_openpgp_public_key", id="no-peer-key"),
    ],
)
def test_a_refused_send_is_a_4xx_envelope(
    pair: tuple[Agent, Agent], extra: dict[str, Any], status: int, code: str
) -> None:
    a, b = pair
    body = {"to": b.name, "content": "hello", "subject": "s", **extra}
    assert_envelope(_post(a, "/messages/send", body, b.name), status, code)


def test_a_body_over_the_request_limit_sent_chunked_is_refused(
    pair: tuple[Agent, Agent],
) -> None:
    a, b = pair
    chunk = b"x" * (64 * KIB)

    def body() -> Iterator[bytes]:
        yield b'{"to": "' + b.name.encode() + b'", "subject": "s", "content": "'
        for _ in range(5):
            yield chunk
        yield b'"}'

    response = a.http.post(
        "/messages/send",
        content=body(),
        headers={**a.auth, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_envelope(response, 413, "payload_too_large")


def test_a_json_body_with_a_text_content_type_is_refused(pair: tuple[Agent, Agent]) -> None:
    a, b = pair
    body = json.dumps({"to": b.name, "content": "hello", "subject": "s"}).encode()
    response = a.http.post(
        "/messages/send", content=body, headers={**a.auth, "content-type": "text/plain"}
    )
    assert_envelope(response)


# --- bad query and path parameters --------------------------------------------------------------

LONG = "x" * 300

PARAM_CASES = [
    ("GET", "/inbox?since=-1", 422, "validation_error"),
    ("GET", "/inbox?since=abc", 422, "validation_error"),
    ("GET", "/inbox?since=1.5", 422, "validation_error"),
    ("GET", "/inbox?since=" + "9" * 30, 422, "validation_error"),
    ("GET", "/inbox?since=", 422, "validation_error"),
    ("GET", "/inbox?limit=0", 422, "validation_error"),
    ("GET", "/inbox?limit=-5", 422, "validation_error"),
    ("GET", "/inbox?limit=100000", 422, "validation_error"),
    ("GET", "/inbox?limit=abc", 422, "validation_error"),
    ("GET", "/sessions?limit=0", 422, "validation_error"),
    ("GET", "/sessions?limit=abc", 422, "validation_error"),
    ("GET", "/sessions/x/history?limit=abc", 422, "validation_error"),
    ("GET", "/sessions/x/history?limit=0", 422, "validation_error"),
    ("GET", "/sessions/x/history?before=", 422, "validation_error"),
    ("GET", f"/sessions/x/history?before={LONG}", 422, "validation_error"),
    ("GET", f"/sessions/{LONG}/history", 422, "validation_error"),
    ("GET", "/sessions/no-such-session/history", 404, "session_not_found"),
    ("GET", "/sessions/a.b/history", 422, "validation_error"),
    ("GET", f"/messages/{LONG}", 422, "validation_error"),
    ("GET", "/messages/no-such-message", 404, "not_found"),
    ("DELETE", f"/connections/{'n' * 1000}", 422, "validation_error"),
    ("DELETE", "/connections/Not%20A%20Name", 422, "validation_error"),
    ("DELETE", "/connections/no-such-agent-here", 404, "not_found"),
    ("DELETE", "/connections/blocks/Not%20A%20Name", 422, "validation_error"),
    ("DELETE", f"/connections/blocks/{'n' * 1000}", 422, "validation_error"),
    ("DELETE", "/connections/blocks/no-such-agent-here", 404, "not_found"),
    ("GET", f"/public/agents/{LONG}", 422, "validation_error"),
    ("GET", "/public/agents/..%2F..%2Fetc%2Fpasswd", 404, None),
    ("GET", "/public/agents/%E2%98%83", 422, "validation_error"),
    ("GET", "/public/agents/a%20b", 422, "validation_error"),
    ("GET", "/public/agents/'%20OR%201=1%20--", 422, "validation_error"),
    ("GET", "/public/agents/UPPER", 422, "validation_error"),
    ("GET", "/public/agents/%25", 422, "validation_error"),
    ("GET", "/public/agents/no-such-agent-here", 404, "agent_not_found"),
]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [pytest.param(*case, id=f"{case[0]} {case[1][:60]}") for case in PARAM_CASES],
)
def test_a_bad_query_or_path_parameter_is_a_4xx_envelope(
    pair: tuple[Agent, Agent], method: str, path: str, status: int, code: str | None
) -> None:
    a, _ = pair
    response = a.http.request(method, path, headers=a.auth)
    assert_envelope(response, status, code)


# NUL characters are valid JSON and URL text, but no database text column can hold them
# (PostgreSQL refuses them): the server refuses them the same way on every backend.
SESSION = "<session>"

NUL_PATHS = [
    ("GET", "/public/agents/a%00b"),
    ("GET", "/messages/a%00b"),
    ("GET", "/sessions/a%00b/history"),
    ("GET", f"/sessions/{SESSION}/history?before=a%00b"),
    ("DELETE", "/connections/a%00b"),
]


@pytest.mark.parametrize(
    ("method", "path"), [pytest.param(*p, id=f"{p[0]} {p[1]}") for p in NUL_PATHS]
)
def test_a_nul_character_in_a_path_or_query_is_a_validation_error(
    pair: tuple[Agent, Agent], method: str, path: str
) -> None:
    a, b = pair
    if SESSION in path:
        path = path.replace(SESSION, a.send(b, "for history")["session_id"])
    response = a.http.request(method, path, headers=a.auth)
    assert_envelope(response, 422, "validation_error")


# (endpoint, body, the field holding the NUL)
NUL_BODIES = [
    ("/agents/register", {"name": FRESH, "description": "a\u0000b"}, "description"),
    (
        "/connections/request",
        {"target_agent_name": PEER, "message": "a\u0000b"},
        "message",
    ),
    ("/connections/approve", {"verification_code": "AB\u0000123"}, "verification_code"),
    ("/connections/reject", {"request_id": "a\u0000b"}, "request_id"),
    ("/connections/blocks", {"agent_name": "a\u0000b"}, "agent_name"),
    ("/messages/send", {"content": "a\u0000b"}, "content"),
    ("/messages/send", {"subject": "a\u0000b"}, "subject"),
    ("/messages/send", {"session_id": "a\u0000b"}, "session_id"),
    ("/messages/send", {"correlation_id": "a\u0000b"}, "correlation_id"),
    ("/messages/send", {"idempotency_key": "a\u0000b"}, "idempotency_key"),
    ("/inbox/ack", {"message_ids": ["a\u0000b"]}, "message_ids"),
]


@pytest.mark.parametrize(
    ("path", "body"),
    [pytest.param(p, body, id=f"{p}:{field}") for p, body, field in NUL_BODIES],
)
def test_a_nul_character_in_a_body_is_a_validation_error(
    pair: tuple[Agent, Agent], path: str, body: dict[str, Any]
) -> None:
    a, b = pair
    if path == "/messages/send":
        body = {"to": PEER, "content": "hi", "subject": "s", **body}
    response = _post(a, path, body, b.name)
    _never_5xx(response)
    assert_envelope(response, 422, "validation_error")


# --- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/nope"), ("GET", "/agents"), ("GET", "/agents/me/extra")],
)
def test_an_unknown_path_is_a_not_found_envelope(
    server: ServerThread, method: str, path: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert_envelope(http.request(method, path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/agents/register", "POST"),
        ("PUT", "/messages/send", "POST"),
        ("DELETE", "/inbox", "GET"),
        ("PATCH", "/connections/request", "POST"),
        ("POST", "/health", "GET"),
    ],
)
def test_a_wrong_method_is_a_405_envelope(
    pair: tuple[Agent, Agent], method: str, path: str, allowed: str
) -> None:
    a, _ = pair
    response = a.http.request(method, path, headers=a.auth)
    assert_envelope(response, 405)
    assert allowed in response.headers.get("allow", ""), response.headers


def test_get_on_the_send_path_is_read_as_a_message_id_and_not_found(
    pair: tuple[Agent, Agent],
) -> None:
    # `/messages/{message_id}` also matches `/messages/send`, so GET there is a look-up of
    # a message with the id "send": not a 405, but still the envelope.
    a, _ = pair
    assert_error(a.get("/messages/send"), 404, "not_found")


# --- never a half-written row -------------------------------------------------------------------


@pytest.mark.direct_only  # it streams oversized bodies (see _body_cases)
def test_refused_sends_leave_no_trace_and_the_next_good_send_is_seq_1(
    server: ServerThread,
) -> None:
    a, b = register(server.url, "half"), register(server.url, "half")
    connect_agents(a, b)
    good = {"to": b.name, "content": "hello", "subject": "s"}
    refused = [
        ({**good, "unexpected": 1}, 422),
        ({**good, "content": "a" * (64 * KIB + 1)}, 413),
        ({**good, "subject": "  "}, 422),
        ({**good, "session_id": "no-such-session"}, 404),
        ({**good, "encrypted": True}, 409),
        ({**good, "encryption": {"algorithm": "openpgp", "format": "armored"}}, 422),
        ({**good, "content": ""}, 422),
        ({**good, "encrypted": "yes"}, 422),
    ]
    for body, status in refused:
        response = a.post("/messages/send", body)
        assert_envelope(response, status)
    chunk_too_big = a.http.post(
        "/messages/send",
        content=json.dumps({**good, "content": "x" * (REQUEST_LIMIT + 1)}).encode(),
        headers={**a.auth, "content-type": "application/json"},
    )
    assert_envelope(chunk_too_big, 413, "payload_too_large")

    assert b.get("/inbox").json()["messages"] == []
    assert b.get("/inbox?since=0").json()["messages"] == []
    assert a.get("/sessions").json()["sessions"] == []
    assert b.get("/sessions").json()["sessions"] == []

    sent = a.send(b, "finally")
    assert sent["seq"] == 1
    [message] = b.get("/inbox").json()["messages"]
    assert message["seq"] == 1
    assert message["content"] == "finally"
    assert message["message_id"] == sent["message_id"]
    assert len(b.get("/sessions").json()["sessions"]) == 1
