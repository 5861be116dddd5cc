"""Fixtures: a real sandbox-agent speaking LangSmith's sandbox API on loopback
(`--protocol langsmith`), and LangSmith's official SDK pointed at it through LANGSMITH_ENDPOINT
(§H of docs/sandbox-apis.md). The agent's folder is the box's `/`; relative paths and commands
start in `/home/user`, which is `<root>/home/user` on this machine."""

import os
import re
import secrets
import select
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
HOME = "/home/user"


def pytest_addoption(parser):
    parser.addoption(
        "--agent",
        default=os.path.join(REPO, ".build", "debug", "sandbox-agent"),
        help="sandbox-agent binary to test",
    )


class Agent:
    """A sandbox-agent process (`--protocol langsmith`) serving a temporary folder on 127.0.0.1."""

    def __init__(self, binary, token=None):
        self.root = tempfile.mkdtemp(prefix="sdk-langsmith-root-")
        os.makedirs(os.path.join(self.root, HOME.lstrip("/")))
        arguments = [binary, "--protocol", "langsmith", "--listen", "127.0.0.1:0", "--root", self.root]
        self.token = token
        self.token_dir = None
        if token is not None:
            self.token_dir = tempfile.mkdtemp(prefix="sdk-langsmith-token-")
            token_file = os.path.join(self.token_dir, "token")
            with open(token_file, "w") as f:
                f.write(token)
            arguments += ["--token-file", token_file]
        self.process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.url = self._listening_url()

    def _listening_url(self):
        deadline = time.monotonic() + 30
        output = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    break
                output += chunk
                found = re.search(rb"listening on (\S+)\n", output)
                if found:
                    return found.group(1).decode()
        self.stop()
        raise RuntimeError(f"sandbox-agent did not start: {output!r}")

    def host_path(self, box_path):
        """Where a box path lives on this machine."""
        if not box_path.startswith("/"):
            box_path = HOME + "/" + box_path
        return os.path.join(self.root, box_path.lstrip("/"))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.token_dir is not None:
            shutil.rmtree(self.token_dir, ignore_errors=True)


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
