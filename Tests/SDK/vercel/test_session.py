"""The control plane the agent plays (lookup, stop, resume), errors, and bearer tokens."""

import json
import urllib.error
import urllib.request

import pytest
from conftest import make_client
from vercel.sandbox.sync import SandboxApiError


def call(url, path, body=None, token="t"):
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_stopped_sandbox_answers_410_and_the_sdk_resumes_it(fresh_agent):
    client = make_client(fresh_agent.url)
    try:
        sandbox = client.get_sandbox(name="stopper")
        sandbox.fs.write_text("kept.txt", "survives a stop")
        old_session = sandbox.current_session_id
        status, body = call(fresh_agent.url, f"/api/v2/sandboxes/sessions/{old_session}/stop", {})
        assert status == 200 and json.loads(body)["session"]["status"] == "stopped"
        status, body = call(
            fresh_agent.url,
            f"/api/v2/sandboxes/sessions/{old_session}/fs/read",
            {"path": "kept.txt"},
        )
        assert status == 410
        assert json.loads(body)["error"]["code"] == "sandbox_stopped"
        # The SDK resumes a stopped sandbox (a lookup with resume=true) and retries.
        assert sandbox.fs.read_text("kept.txt") == "survives a stop"
        assert client.get_sandbox(name="stopper").current_session_id != old_session
    finally:
        client.close()


def test_sdk_stop(fresh_agent):
    client = make_client(fresh_agent.url)
    try:
        sandbox = client.get_sandbox(name="stopper")
        process = sandbox.create_process("sleep", ["60"])
        sandbox.stop()
        assert str(sandbox.status).endswith(("stopped", "STOPPED"))
        status, _ = call(
            fresh_agent.url,
            f"/api/v2/sandboxes/sessions/{process.session_id}/cmd/{process.id}",
        )
        assert status == 410
    finally:
        client.close()


def test_error_body_shape(agent):
    session = make_client(agent.url).get_sandbox(name="errors").current_session_id
    status, body = call(
        agent.url, f"/api/v2/sandboxes/sessions/{session}/fs/read", {"path": "/nope"}
    )
    assert status == 404
    error = json.loads(body)["error"]
    assert error["code"] == "not_found" and error["message"]
    status, body = call(agent.url, "/api/v2/sandboxes/sessions/unknown/fs/read", {"path": "/x"})
    assert status == 404 and json.loads(body)["error"]["code"] == "sandbox_not_found"


def test_paths_without_the_api_prefix(agent):
    status, body = call(agent.url, "/v2/sandboxes/plain")
    assert status == 200
    assert json.loads(body)["sandbox"]["status"] == "running"


def test_token_is_checked_when_configured(token_agent):
    good = make_client(token_agent.url, token=token_agent.token)
    try:
        sandbox = good.get_sandbox(name="guarded")
        sandbox.fs.write_text("ok.txt", "ok")
        assert sandbox.fs.read_text("ok.txt") == "ok"
    finally:
        good.close()
    bad = make_client(token_agent.url, token="wrong-" + token_agent.token)
    try:
        with pytest.raises(SandboxApiError) as raised:
            bad.get_sandbox(name="guarded")
        assert raised.value.status_code == 403
    finally:
        bad.close()
    status, body = call(token_agent.url, "/api/v2/sandboxes/guarded", token="")
    assert status in (401, 403)
    assert "error" in json.loads(body)


def test_any_token_without_configuration(agent):
    client = make_client(agent.url, token="whatever")
    try:
        assert client.get_sandbox(name="open").status is not None
    finally:
        client.close()
