"""Fixtures: a real sandbox-agent speaking LangSmith's sandbox API on loopback
(`--protocol langsmith`), and LangSmith's official SDK pointed at it through LANGSMITH_ENDPOINT
(§H of docs/sandbox-apis.md). The agent's folder is the box's `/`; relative paths and commands
start in `/home/user`, which is `<root>/home/user` on this machine."""

import os
import sys
import re
import secrets
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent_process import AgentProcess  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
HOME = "/home/user"


def pytest_addoption(parser):
    parser.addoption(
        "--agent",
        default=os.path.join(REPO, ".build", "debug", "sandbox-agent"),
        help="sandbox-agent binary to test",
    )


class Agent(AgentProcess):
    """A sandbox-agent process (`--protocol langsmith`) serving a temporary folder on 127.0.0.1."""

    def __init__(self, binary, token=None):
        super().__init__(
            binary, ["--protocol", "langsmith"], token=token, name="langsmith", folders=[HOME])

    def host_path(self, box_path):
        """Where a box path lives on this machine."""
        return super().host_path(box_path, cwd=HOME)


@pytest.fixture(scope="session")
def agent(pytestconfig):
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
    """The SDK's own client, found through LANGSMITH_ENDPOINT as a user would set it."""
    from langsmith import utils as ls_utils
    from langsmith.sandbox import SandboxClient

    os.environ["LANGSMITH_ENDPOINT"] = agent.url
    os.environ["LANGSMITH_API_KEY"] = "lsv2_any_key"
    ls_utils.get_env_var.cache_clear()
    made = SandboxClient()
    yield made
    made.close()


@pytest.fixture(scope="session")
def sandbox(client):
    return client.get_sandbox("sdk-suite")


@pytest.fixture
def folder(agent, request):
    """A fresh folder for one test, relative to /home/user."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    path = f"t/{name}-{uuid.uuid4().hex[:8]}"
    os.makedirs(agent.host_path(path))
    return path
