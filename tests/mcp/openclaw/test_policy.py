"""What runs started by peers' messages can reach: the reply alone, or more (doctor says)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbox_mcp.openclaw.policy import inspect_policy, judge
from mailbox_mcp.owner.snippets import openclaw_dedicated_config
from mailbox_mcp.settings import BridgeSettings


def test_peer_sessions_under_main_are_flagged() -> None:
    finding = judge({}, "main")
    assert finding.safe is False and "exec" in finding.detail


def test_an_agent_without_an_allow_list_is_flagged() -> None:
    config = {"agents": {"entries": {"mailbox": {"tools": {"deny": ["group:runtime"]}}}}}
    assert judge(config, "mailbox").safe is False


def test_an_allow_list_with_dangerous_tools_is_flagged() -> None:
    allow = ["mailbox__mailbox_reply", "exec"]
    config = {"agents": {"entries": {"mailbox": {"tools": {"allow": allow}}}}}
    finding = judge(config, "mailbox")
    assert finding.safe is False and "exec" in finding.detail


def test_the_dedicated_config_we_print_passes(tmp_path: Path) -> None:
    settings = BridgeSettings(MAILBOX_STATE_DIR=str(tmp_path))
    config = openclaw_dedicated_config(settings)
    assert judge(config, "mailbox").safe is True


def test_an_unreadable_config_is_not_guessed_at(tmp_path: Path) -> None:
    assert inspect_policy(tmp_path / "missing.json", "main").safe is None
    (tmp_path / "broken.json").write_text("{ agents: { /* never closed */ ")
    finding = inspect_policy(tmp_path / "broken.json", "main")
    assert finding.safe is None and "JSON5" in finding.detail
    assert finding.fix is not None and "broken.json" in finding.fix


def test_a_json5_config_is_read_as_openclaw_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text(
        "{\n  // the peer agent\n  agents: { entries: { mailbox: { tools: "
        "{ allow: ['mailbox__mailbox_reply',], }, }, }, },\n}\n"
    )
    finding = inspect_policy(path, "mailbox")
    assert finding.safe is True and "mailbox__mailbox_reply" in finding.detail


def test_agents_that_is_not_an_object_is_reported_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text('{"agents": []}')
    finding = inspect_policy(path, "mailbox")
    assert finding.safe is None and "agents must be an object" in finding.detail
    assert finding.fix is not None and "agents must be an object" in finding.fix


def test_an_allow_list_given_as_a_string_is_read_as_one_entry(tmp_path: Path) -> None:
    path = tmp_path / "openclaw.json"
    path.write_text('{"agents": {"entries": {"mailbox": {"tools": {"allow": "exec"}}}}}')
    finding = inspect_policy(path, "mailbox")
    assert finding.safe is False and "allows exec to runs" in finding.detail
    assert "e, x" not in finding.detail  # never a list of its characters


def test_an_allow_list_that_matches_no_mcp_server_is_flagged(tmp_path: Path) -> None:
    settings = BridgeSettings(MAILBOX_STATE_DIR=str(tmp_path))
    config = openclaw_dedicated_config(settings)
    config["mcp"]["servers"] = {"mail": config["mcp"]["servers"]["mailbox"]}  # renamed
    finding = judge(config, "mailbox")
    assert finding.safe is False and "does not match mail__mailbox_reply" in finding.detail
    assert finding.fix is not None and '["mail__mailbox_reply"]' in finding.fix


@pytest.mark.parametrize(
    "allow",
    [
        ["mailbox__*"],
        "mailbox__*",  # a string is one entry, not a list of characters
        ["mailbox__mailbox_reply", "mailbox__mailbox_history"],
        ["mailbox__mailbox_*"],
        ["mailbox__mailbox_reply", "group:plugins"],
        ["bundle-mcp"],
        ["*"],
    ],
)
def test_a_peer_agent_that_reaches_other_mailbox_tools_fails_with_the_one_line_fix(
    allow: object,
) -> None:
    config = {
        "mcp": {"servers": {"mailbox": {"command": "python", "args": ["-m", "mailbox_mcp"]}}},
        "agents": {"entries": {"mailbox": {"tools": {"allow": allow}}}},
    }
    finding = judge(config, "mailbox")
    assert finding.safe is False and finding.reaches_owner_tools
    assert "not only the reply" in finding.detail
    assert finding.fix == (
        "openclaw config set agents.entries.mailbox.tools.allow "
        "'[\"mailbox__mailbox_reply\"]' --strict-json"
    )


def test_the_reply_alone_passes() -> None:
    config = {"agents": {"entries": {"mailbox": {"tools": {"allow": ["mailbox__mailbox_reply"]}}}}}
    finding = judge(config, "mailbox")
    assert finding.safe is True and not finding.reaches_owner_tools
