"""Fixtures: a real sandbox-agent speaking Vercel's API on loopback (`--protocol vercel`), and
Vercel's official SDK pointed at it. The agent's folder is the sandbox's `/`, so the sandbox's
working directory `/vercel/sandbox` is `<root>/vercel/sandbox` on this machine."""

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
SANDBOX_CWD = "/vercel/sandbox"


def pytest_addoption(parser):
    parser.addoption(
        "--agent",
        default=os.path.join(REPO, ".build", "debug", "sandbox-agent"),
        help="sandbox-agent binary to test",
    )


class Agent:
    """A sandbox-agent process (`--protocol vercel`) serving a temporary folder on 127.0.0.1."""

    def __init__(self, binary, token=None):
        self.root = tempfile.mkdtemp(prefix="sdk-vercel-root-")
        arguments = [binary, "--protocol", "vercel", "--listen", "127.0.0.1:0", "--root", self.root]
        self.token = token
        self.token_dir = None
        if token is not None:
            self.token_dir = tempfile.mkdtemp(prefix="sdk-vercel-token-")
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

    def host_path(self, sandbox_path):
        """Where a sandbox path lives on this machine."""
        if not sandbox_path.startswith("/"):
            sandbox_path = SANDBOX_CWD + "/" + sandbox_path
        return os.path.join(self.root, sandbox_path.lstrip("/"))

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
