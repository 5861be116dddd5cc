"""Fixtures: a real sandbox-agent speaking CoreWeave's sandbox gRPC API on loopback
(`--protocol coreweave`, h2c), and CoreWeave's official SDK attached to it with
`Sandbox.from_id(ID, base_url="http://…")` (§H of docs/sandbox-apis.md).

The SDK runs its large-file fallbacks as commands (`cat < "$path"`, `head -c N > "$path"`) with the
sandbox path in argv, and the agent runs commands on the host, not in a chroot. So the main agent
serves `/`: sandbox paths and host paths are then the same, and each test works in a fresh folder
under the system's temporary folder. A second agent serves a temporary folder, for the unary calls'
mapping of sandbox paths under `--root`. The file cap is set to 1 MiB so the fallbacks run on
small files."""

import os
import secrets
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from agent_process import AgentProcess  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SANDBOX_ID = "sdk-suite"
CAP = 1 << 20


def pytest_addoption(parser):
    parser.addoption(
        "--agent",
        default=os.path.join(REPO, ".build", "debug", "sandbox-agent"),
        help="sandbox-agent binary to test",
    )


def coreweave_agent(binary, root=None, token=None):
    return AgentProcess(
        binary,
        ["--protocol", "coreweave", "--sandbox-id", SANDBOX_ID, "--coreweave-file-cap", str(CAP)],
        token=token,
        name="coreweave",
        root=root,
    )


@pytest.fixture(scope="session")
def agent(pytestconfig):
    running = coreweave_agent(pytestconfig.getoption("--agent"), root="/")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def jailed_agent(pytestconfig):
    running = coreweave_agent(pytestconfig.getoption("--agent"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def token_agent(pytestconfig):
    running = coreweave_agent(
        pytestconfig.getoption("--agent"), root="/", token=secrets.token_hex(16))
    yield running
    running.stop()


def attach(url, sandbox_id=SANDBOX_ID):
    """The SDK's own attach, as a user would call it (the key, if any, from CWSANDBOX_API_KEY)."""
    from cwsandbox import Sandbox

    return Sandbox.from_id(sandbox_id, base_url=url).result()


@pytest.fixture(scope="session")
def sandbox(agent):
    return attach(agent.url)


@pytest.fixture(scope="session")
def jailed(jailed_agent):
    return attach(jailed_agent.url)


@pytest.fixture
def folder(request):
    """A fresh host folder, which is also its sandbox path (the agent serves `/`)."""
    path = tempfile.mkdtemp(prefix="sdk-coreweave-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
