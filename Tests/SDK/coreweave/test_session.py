"""Attaching: GetSandbox, unknown ids, ConnectSandbox's fallback to the gateway, bearer keys."""

import os

import pytest
from cwsandbox import AuthStrategy, Sandbox
from cwsandbox.exceptions import CWSandboxAuthenticationError, SandboxNotFoundError

from conftest import SANDBOX_ID, attach


def test_from_id_reports_running(sandbox):
    # ConnectSandbox answers UNIMPLEMENTED, so the SDK's default mode uses the agent as gateway.
    assert sandbox.sandbox_id == SANDBOX_ID
    assert str(sandbox.status).lower().endswith("running")
    assert sandbox.exec(["true"]).result().returncode == 0


def test_unknown_sandbox_is_not_found(agent):
    with pytest.raises(SandboxNotFoundError) as caught:
        attach(agent.url, sandbox_id="no-such-sandbox")
    assert caught.value.reason == "CWSANDBOX_SANDBOX_NOT_FOUND"


def test_key_required_when_configured(token_agent):
    with pytest.raises(CWSandboxAuthenticationError):
        Sandbox.from_id(SANDBOX_ID, base_url=token_agent.url).result()


def test_wrong_key_refused(token_agent, monkeypatch):
    monkeypatch.setenv("CWSANDBOX_API_KEY", "not-the-key")
    with pytest.raises(CWSandboxAuthenticationError):
        Sandbox.from_id(
            SANDBOX_ID, base_url=token_agent.url, auth=AuthStrategy.COREWEAVE_API_KEY
        ).result()


def test_right_key_accepted(token_agent, monkeypatch, folder):
    monkeypatch.setenv("CWSANDBOX_API_KEY", token_agent.token)
    sb = Sandbox.from_id(SANDBOX_ID, base_url=token_agent.url, auth=AuthStrategy.COREWEAVE_API_KEY).result()
    path = os.path.join(folder, "keyed")
    sb.write_file(path, b"with a key").result()
    assert sb.read_file(path).result() == b"with a key"
    assert sb.exec(["cat", path]).result().stdout_bytes == b"with a key"
