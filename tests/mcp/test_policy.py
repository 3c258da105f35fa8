"""Warning the owner when runs started by peers' messages keep dangerous tools."""

from __future__ import annotations

from pathlib import Path

from mailbox_mcp.policy import inspect_policy, judge
from mailbox_mcp.settings import BridgeSettings
from mailbox_mcp.snippets import openclaw_dedicated_config


def test_peer_sessions_under_main_are_flagged() -> None:
    finding = judge({}, "main")
    assert finding.safe is False and "exec" in finding.detail


def test_an_agent_without_an_allow_list_is_flagged() -> None:
    config = {"agents": {"entries": {"mailbox": {"tools": {"deny": ["group:runtime"]}}}}}
    assert judge(config, "mailbox").safe is False


def test_an_allow_list_with_dangerous_tools_is_flagged() -> None:
    config = {"agents": {"entries": {"mailbox": {"tools": {"allow": ["mailbox__*", "exec"]}}}}}
    finding = judge(config, "mailbox")
    assert finding.safe is False and "exec" in finding.detail


def test_the_dedicated_config_we_print_passes(tmp_path: Path) -> None:
    settings = BridgeSettings(MAILBOX_STATE_DIR=str(tmp_path))
    config = openclaw_dedicated_config(settings)
    assert judge(config, "mailbox").safe is True


def test_an_unreadable_config_is_not_guessed_at(tmp_path: Path) -> None:
    assert inspect_policy(tmp_path / "missing.json", "main").safe is None
    (tmp_path / "json5.json").write_text("{ agents: { /* json5 */ } }")
    assert inspect_policy(tmp_path / "json5.json", "main").safe is None


def test_an_allow_list_that_matches_no_mcp_server_is_flagged(tmp_path: Path) -> None:
    settings = BridgeSettings(MAILBOX_STATE_DIR=str(tmp_path))
    config = openclaw_dedicated_config(settings)
    config["mcp"]["servers"] = {"mail": config["mcp"]["servers"]["mailbox"]}  # renamed
    finding = judge(config, "mailbox")
    assert finding.safe is False and "no tool matches" in finding.detail
