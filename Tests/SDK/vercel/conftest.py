"""Fixtures: a real sandbox-agent speaking Vercel's API on loopback (`--protocol vercel`), and
Vercel's official SDK pointed at it. The agent's folder is the sandbox's `/`, so the sandbox's
working directory `/vercel/sandbox` is `<root>/vercel/sandbox` on this machine."""

import os
import sys
import re
import secrets
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent_process import AgentProcess  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SANDBOX_CWD = "/vercel/sandbox"


def pytest_addoption(parser):
    parser.addoption(
        "--agent",
        default=os.path.join(REPO, ".build", "debug", "sandbox-agent"),
        help="sandbox-agent binary to test",
    )


class Agent(AgentProcess):
    """A sandbox-agent process (`--protocol vercel`) serving a temporary folder on 127.0.0.1."""

    def __init__(self, binary, token=None):
        super().__init__(binary, ["--protocol", "vercel"], token=token, name="vercel")

    def host_path(self, sandbox_path):
        """Where a sandbox path lives on this machine."""
        return super().host_path(sandbox_path, cwd=SANDBOX_CWD)


def make_client(url, token="any-token"):
    """The SDK's own client, pointed at `url` (§H of docs/sandbox-apis.md)."""
    from vercel.sandbox.sync import SandboxCredentials, SandboxServiceOptions, SyncSandboxClient

    options = SandboxServiceOptions(
        base_url=url + "/api",
        credentials_factory=lambda: SandboxCredentials(
            token=token, team_id="team_sandbox_agent", project_id="prj_sandbox_agent"
        ),
    )
    return SyncSandboxClient.create(options=options)


@pytest.fixture(scope="session")
def agent(pytestconfig):
    running = Agent(pytestconfig.getoption("--agent"))
    yield running
    running.stop()


@pytest.fixture
def fresh_agent(pytestconfig):
    """An agent of its own, for tests that stop its sandbox."""
    running = Agent(pytestconfig.getoption("--agent"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def token_agent(pytestconfig):
    running = Agent(pytestconfig.getoption("--agent"), token=secrets.token_hex(16))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(agent):
    made = make_client(agent.url)
    yield made
    made.close()


@pytest.fixture(scope="session")
def sandbox(client):
    return client.get_sandbox(name="sdk-suite")


@pytest.fixture
def folder(sandbox, request):
    """A fresh folder for one test, relative to the sandbox's working directory."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    path = f"t/{name}-{uuid.uuid4().hex[:8]}"
    sandbox.fs.mkdir(path)
    return path
