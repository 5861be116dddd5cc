"""Fixtures: a real sandbox-agent on loopback, the SDK pointed at it, and a stand-in for the one
E2B control-plane call the SDK makes to connect with a token."""

import json
import os
import sys
import re
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent_process import AgentProcess  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
# What the stand-in reports: the envd release the agent follows (docs/envd-protocol.md).
ENVD_VERSION = "0.6.13"


def pytest_addoption(parser):
    parser.addoption(
        "--agent",
        default=os.path.join(REPO, ".build", "debug", "sandbox-agent"),
        help="sandbox-agent binary to test",
    )
    parser.addoption(
        "--envd-compat",
        action="store_true",
        help="run the agent as stock envd (extension off)",
    )


class Agent(AgentProcess):
    """A sandbox-agent process serving a temporary folder on 127.0.0.1, on a free port."""

    def __init__(self, binary, envd_compat, token=None):
        super().__init__(
            binary, ["--envd-compat"] if envd_compat else [], token=token, name="e2b")


@pytest.fixture(scope="session")
def agent(pytestconfig):
    running = Agent(pytestconfig.getoption("--agent"), pytestconfig.getoption("--envd-compat"))
    yield running
    running.stop()


def _debug_environment(agent):
    # Debug mode skips the control plane and takes the sandbox URL as given (else
    # http://localhost:49983, which two runs at once would share).
    return {"E2B_DEBUG": "true", "E2B_SANDBOX_URL": agent.url}


class _Environment:
    """Sets environment variables for a block, then puts the old values back."""

    def __init__(self, values, remove=()):
        self.values = values
        self.remove = remove

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in list(self.values) + list(self.remove)}
        for key in self.remove:
            os.environ.pop(key, None)
        os.environ.update(self.values)

    def __exit__(self, *_):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def sandbox(agent):
    from e2b import Sandbox

    # The SDK reads its environment when the sandbox is made; the object keeps it.
    with _Environment(_debug_environment(agent)):
        sbx = Sandbox.create()
    return sbx


@pytest.fixture(scope="session")
def async_sandbox_environment(agent):
    return _Environment(_debug_environment(agent))


@pytest.fixture
def folder(sandbox, request):
    """A fresh folder for one test, as the SDK sees it."""
    path = f"/t/{request.node.name}-{uuid.uuid4().hex[:8]}"
    sandbox.files.make_dir(path)
    return path


class ControlPlane:
    """Stands in for api.e2b.app: answers `POST /v2/sandboxes/{id}/connect` as the real API does,
    with the access token of the agent that plays the sandbox. It is the only part of E2B that
    cannot run here."""

    def __init__(self):
        self.api_key = "e2b_" + secrets.token_hex(20)
        self.sandboxes = {}
        self.calls = []
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                plane.calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                found = re.fullmatch(r"/v2/sandboxes/([^/]+)/connect", self.path)
                if not found:
                    return self._answer(404, {"code": 404, "message": "not found"})
                if self.headers.get("X-API-KEY") != plane.api_key:
                    return self._answer(401, {"code": 401, "message": "Invalid API key"})
                sandbox_id = found.group(1)
                token = plane.sandboxes.get(sandbox_id)
                if token is None:
                    return self._answer(
                        404, {"code": 404, "message": f"sandbox {sandbox_id} not found"}
                    )
                self._answer(
                    200,
                    {
                        "templateID": "base",
                        "sandboxID": sandbox_id,
                        "clientID": "sandbox-agent",
                        "envdVersion": ENVD_VERSION,
                        "envdAccessToken": token,
                    },
                )

            def _answer(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def token_agent(pytestconfig):
    running = Agent(
        pytestconfig.getoption("--agent"),
        pytestconfig.getoption("--envd-compat"),
        token=secrets.token_hex(16),
    )
    yield running
    running.stop()


@pytest.fixture(scope="session")
def control_plane(token_agent):
    plane = ControlPlane()
    plane.sandboxes["isbx-agent"] = token_agent.token
    # The same agent, but the API hands out a token it does not accept.
    plane.sandboxes["isbx-wrong-token"] = "not-" + token_agent.token
    yield plane
    plane.stop()


@pytest.fixture
def api_environment(control_plane, token_agent, monkeypatch):
    """The SDK's token path: E2B_API_URL (the stand-in), E2B_API_KEY, E2B_SANDBOX_URL (the agent)."""
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.setenv("E2B_API_URL", control_plane.url)
    monkeypatch.setenv("E2B_API_KEY", control_plane.api_key)
    monkeypatch.setenv("E2B_SANDBOX_URL", token_agent.url)
    return control_plane
