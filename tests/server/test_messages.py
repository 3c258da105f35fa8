"""Sending, sessions, per-recipient seq, idempotency, inbox and acknowledgements."""

from __future__ import annotations

import concurrent.futures

from tests.helpers import Agent, assert_error, connect_agents, register
from tests.servers import ServerThread


def _pair(server: ServerThread) -> tuple[Agent, Agent]:
    a, b = register(server.url, "alice"), register(server.url, "bob")
    connect_agents(a, b)
    return a, b


def test_send_answers_the_recipients_seq_and_the_message_reaches_the_inbox(
    server: ServerThread,
) -> None:
    a, b = _pair(server)
    sent = a.send(b, "hello", subject="Greetings", correlation_id="c-1")
    assert sent["seq"] == 1
    inbox = b.get("/inbox").json()
    [message] = inbox["messages"]
    assert message["message_id"] == sent["message_id"]
    assert message["from_agent"] == a.name and message["to_agent"] == b.name
    assert message["subject"] == "Greetings" and message["content"] == "hello"
    assert message["correlation_id"] == "c-1" and message["encrypted"] is False
    assert inbox["next_since"] == 1


def test_the_server_sets_the_sender_not_the_client(server: ServerThread) -> None:
    a, b = _pair(server)
    response = a.post(
        "/messages/send", {"to": b.name, "content": "x", "subject": "s", "from_agent": "mallory"}
    )
    assert_error(response, 422, "validation_error")
    a.send(b, "x")
    assert b.get("/inbox").json()["messages"][0]["from_agent"] == a.name


def test_a_new_conversation_needs_a_subject(server: ServerThread) -> None:
    a, b = _pair(server)
    assert_error(a.post("/messages/send", {"to": b.name, "content": "x"}), 422, "subject_required")
    assert_error(
        a.post("/messages/send", {"to": b.name, "content": "x", "subject": "   "}),
        422,
        "subject_required",
    )


def test_a_reply_continues_the_session_and_keeps_its_subject(server: ServerThread) -> None:
    a, b = _pair(server)
    first = a.send(b, "question?", subject="Topic")
    reply = b.send(a, "answer!", session_id=first["session_id"])
    assert reply["session_id"] == first["session_id"]
    [message] = a.get("/inbox").json()["messages"]
    assert message["subject"] == "Topic" and message["session_id"] == first["session_id"]


def test_a_session_of_other_agents_is_not_found(server: ServerThread) -> None:
    a, b = _pair(server)
    c, d = _pair(server)
    theirs = c.send(d, "private", subject="Theirs")
    assert_error(
        a.post(
            "/messages/send", {"to": b.name, "content": "x", "session_id": theirs["session_id"]}
        ),
        404,
        "session_not_found",
    )
    assert_error(a.get(f"/sessions/{theirs['session_id']}/history"), 404, "session_not_found")
    assert_error(a.get(f"/messages/{theirs['message_id']}"), 404, "not_found")


def test_sending_without_a_connection_is_refused(server: ServerThread) -> None:
    a, b = register(server.url), register(server.url)
    assert_error(
        a.post("/messages/send", {"to": b.name, "content": "x", "subject": "s"}),
        403,
        "not_connected",
    )
    assert_error(
        a.post("/messages/send", {"to": "nobody-here-xyz", "content": "x", "subject": "s"}),
        404,
        "agent_not_found",
    )
    assert b.get("/inbox").json()["messages"] == []


def test_seq_is_contiguous_per_recipient_under_concurrent_senders(server: ServerThread) -> None:
    target = register(server.url, "target")
    senders = [register(server.url, "sender") for _ in range(4)]
    for sender in senders:
        connect_agents(sender, target)

    def burst(sender: Agent) -> list[int]:
        return [sender.send(target, f"{sender.name} {i}")["seq"] for i in range(15)]

    with concurrent.futures.ThreadPoolExecutor(len(senders)) as pool:
        seqs = [seq for result in pool.map(burst, senders) for seq in result]
    assert sorted(seqs) == list(range(1, 61))
    inbox = target.get("/inbox", params={"limit": 500}).json()["messages"]
    assert [m["seq"] for m in inbox] == list(range(1, 61))
    # Another recipient's sequence is its own.
    other = senders[0]
    assert target.send(other, "back", subject="s")["seq"] == 1


def test_an_idempotent_retry_returns_the_first_answer_and_stores_one_message(
    server: ServerThread,
) -> None:
    a, b = _pair(server)
    body = {"to": b.name, "content": "once", "subject": "s", "idempotency_key": "k-1"}
    first = a.post("/messages/send", body)
    again = a.post("/messages/send", body)
    assert first.status_code == 201 and again.status_code == 201
    assert again.json() == first.json()
    assert len(b.get("/inbox").json()["messages"]) == 1
    changed = a.post("/messages/send", {**body, "content": "different"})
    assert_error(changed, 409, "idempotency_conflict")
    # Keys are per sender: another sender may use the same key.
    c = register(server.url)
    connect_agents(c, b)
    assert c.post("/messages/send", body).status_code == 201


def test_concurrent_retries_with_one_key_store_one_message(server: ServerThread) -> None:
    a, b = _pair(server)
    body = {"to": b.name, "content": "race", "subject": "s", "idempotency_key": "race-1"}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: a.post("/messages/send", body), range(6)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["message_id"] for r in answers}) == 1
    assert len(b.get("/inbox").json()["messages"]) == 1


def test_content_over_the_limit_is_413_and_nothing_is_stored(server: ServerThread) -> None:
    a, b = _pair(server)
    too_big = "x" * (64 * 1024 + 1)
    assert_error(
        a.post("/messages/send", {"to": b.name, "content": too_big, "subject": "s"}),
        413,
        "payload_too_large",
    )
    assert b.get("/inbox").json()["messages"] == []
    assert a.send(b, "x" * (64 * 1024))["seq"] == 1


def test_inbox_since_and_limit_page_through_messages(server: ServerThread) -> None:
    a, b = _pair(server)
    for i in range(5):
        a.send(b, f"m{i}")
    page = b.get("/inbox", params={"limit": 2}).json()
    assert [m["content"] for m in page["messages"]] == ["m0", "m1"]
    page = b.get("/inbox", params={"since": page["next_since"], "limit": 2}).json()
    assert [m["content"] for m in page["messages"]] == ["m2", "m3"]
    page = b.get("/inbox", params={"since": page["next_since"]}).json()
    assert [m["content"] for m in page["messages"]] == ["m4"]
    assert b.get("/inbox", params={"since": page["next_since"]}).json()["messages"] == []


def test_acknowledged_messages_leave_the_default_inbox(server: ServerThread) -> None:
    a, b = _pair(server)
    for i in range(4):
        a.send(b, f"m{i}")
    ack = b.post("/inbox/ack", {"up_to_seq": 2})
    assert ack.status_code == 200 and ack.json()["acknowledged_up_to_seq"] == 2
    assert [m["seq"] for m in b.get("/inbox").json()["messages"]] == [3, 4]
    # `since` still reads acknowledged ones again.
    assert [m["seq"] for m in b.get("/inbox", params={"since": 0}).json()["messages"]] == [
        1,
        2,
        3,
        4,
    ]


def test_ack_by_message_ids_and_the_watermark_follows(server: ServerThread) -> None:
    a, b = _pair(server)
    sent = [a.send(b, f"m{i}") for i in range(3)]
    ack = b.post("/inbox/ack", {"message_ids": [sent[1]["message_id"]]})
    assert ack.json()["acknowledged_up_to_seq"] == 0
    assert [m["seq"] for m in b.get("/inbox").json()["messages"]] == [1, 3]
    ack = b.post("/inbox/ack", {"message_ids": [sent[0]["message_id"]]})
    assert ack.json()["acknowledged_up_to_seq"] == 2
    assert [m["seq"] for m in b.get("/inbox").json()["messages"]] == [3]


def test_ack_cannot_touch_other_agents_messages_or_the_future(server: ServerThread) -> None:
    a, b = _pair(server)
    sent = a.send(b, "for b")
    assert_error(a.post("/inbox/ack", {"message_ids": [sent["message_id"]]}), 404, "not_found")
    assert b.post("/inbox/ack", {"up_to_seq": 1000}).json()["acknowledged_up_to_seq"] == 1
    later = a.send(b, "later")
    assert [m["message_id"] for m in b.get("/inbox").json()["messages"]] == [later["message_id"]]
    assert_error(b.post("/inbox/ack", {}), 422, "validation_error")


def test_a_message_is_readable_by_its_participants_only(server: ServerThread) -> None:
    a, b = _pair(server)
    stranger = register(server.url)
    sent = a.send(b, "secret")
    for reader in (a, b):
        response = reader.get(f"/messages/{sent['message_id']}")
        assert response.status_code == 200 and response.json()["content"] == "secret"
    assert_error(stranger.get(f"/messages/{sent['message_id']}"), 404, "not_found")


def test_sessions_and_history_in_order_with_paging(server: ServerThread) -> None:
    a, b = _pair(server)
    first = a.send(b, "one", subject="Plan")
    sid = first["session_id"]
    b.send(a, "two", session_id=sid)
    third = a.send(b, "three", session_id=sid)
    a.send(b, "other topic", subject="Other")
    sessions = a.get("/sessions").json()["sessions"]
    assert {s["subject"] for s in sessions} == {"Plan", "Other"}
    assert all(sorted(s["participants"]) == sorted([a.name, b.name]) for s in sessions)
    history = b.get(f"/sessions/{sid}/history").json()
    assert history["subject"] == "Plan"
    assert [m["content"] for m in history["messages"]] == ["one", "two", "three"]
    older = b.get(f"/sessions/{sid}/history", params={"before": third["message_id"], "limit": 1})
    assert [m["content"] for m in older.json()["messages"]] == ["two"]


def test_revoked_peers_keep_their_history(server: ServerThread) -> None:
    a, b = _pair(server)
    sent = a.send(b, "before revoke", subject="Old")
    assert a.delete(f"/connections/{b.name}").status_code == 200
    history = b.get(f"/sessions/{sent['session_id']}/history").json()
    assert [m["content"] for m in history["messages"]] == ["before revoke"]
    assert_error(
        a.post("/messages/send", {"to": b.name, "content": "x", "session_id": sent["session_id"]}),
        403,
        "not_connected",
    )


def test_encrypted_send_to_a_peer_without_a_key_is_409(server: ServerThread) -> None:
    a, b = _pair(server)
    response = a.post(
        "/messages/send",
        {
            "to": b.name,
            "content": "-----BEGIN PGP MESSAGE-----\n...\n-----END PGP MESSAGE-----",
            "subject": "s",
            "encrypted": True,
            "encryption": {"algorithm": "openpgp", "format": "armored"},
        },
    )
    assert_error(response, 409, "peer_missing_openpgp_public_key")


def test_the_framework_route_answers_like_the_fast_path(fresh_database_url: str) -> None:
    """With MAILBOX_FAST_SEND=0 the FastAPI route serves sends: same answers, same errors."""
    from tests.servers import server_settings

    answers = []
    for fast in (True, False):
        settings = server_settings(fresh_database_url, MAILBOX_FAST_SEND=fast)
        with ServerThread(settings) as running:
            a, b = register(running.url, "alice"), register(running.url, "bob")
            connect_agents(a, b)
            sent = a.send(b, "hello", subject="S")
            cases = [
                a.post("/messages/send", {"to": b.name, "content": "x"}),
                a.post("/messages/send", {"to": b.name, "content": 1, "subject": "s"}),
                a.post("/messages/send", {"to": "no-such-agent", "content": "x", "subject": "s"}),
                b.http.post("/messages/send", json={"to": a.name, "content": "x"}),
            ]
            answers.append(
                (set(sent), sent["seq"], [(r.status_code, r.json()["error"]) for r in cases])
            )
    assert answers[0] == answers[1]
    assert answers[0][2] == [
        (422, "subject_required"),
        (422, "validation_error"),
        (404, "agent_not_found"),
        (401, "unauthorized"),
    ]
