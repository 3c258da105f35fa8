"""The serve token: never empty, kept 0600, made whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailbox_mcp.errors import ConfigError
from mailbox_mcp.mcp_server.serve_auth import BearerToken, serve_token
from mailbox_mcp.settings import BridgeSettings


def _settings(state_dir: Path, token: str | None = None) -> BridgeSettings:
    settings = BridgeSettings(MAILBOX_STATE_DIR=str(state_dir))  # type: ignore[call-arg]
    settings.serve_token = None if token is None else SecretStr(token)
    return settings


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never reached")


@pytest.mark.parametrize("token", ["", " ", "\n"])
def test_a_guard_with_an_empty_token_cannot_be_made(token: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        BearerToken(_app, token)


@pytest.mark.parametrize("kept", ["", "\n", " \t "])
def test_an_empty_token_file_is_a_config_error_naming_it(tmp_path: Path, kept: str) -> None:
    (tmp_path / "serve_token").write_text(kept)
    with pytest.raises(ConfigError, match=f"{tmp_path / 'serve_token'} is empty"):
        serve_token(_settings(tmp_path))


def test_a_blank_mailbox_serve_token_counts_as_unset(tmp_path: Path) -> None:
    token = serve_token(_settings(tmp_path, "   "))
    assert token.strip() and token == (tmp_path / "serve_token").read_text().strip()


def test_a_made_token_is_whole_0600_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    token = serve_token(_settings(tmp_path))
    assert len(token) >= 32
    assert os.listdir(tmp_path) == ["serve_token"]
    assert (tmp_path / "serve_token").stat().st_mode & 0o777 == 0o600
    assert serve_token(_settings(tmp_path)) == token  # kept, not made again


def test_a_token_another_process_made_first_is_the_one_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other process links its file in between our check and our link.
    link = os.link

    def raced(source: str, destination: Path) -> None:
        destination.write_text("theirs\n")
        link(source, destination)

    monkeypatch.setattr(os, "link", raced)
    assert serve_token(_settings(tmp_path)) == "theirs"
    assert os.listdir(tmp_path) == ["serve_token"]
