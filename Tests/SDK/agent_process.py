"""The one sandbox-agent process every SDK suite starts: a temporary folder served on a free
loopback port, with an optional access token; always stopped by its fixture."""

import os
import re
import select
import shutil
import subprocess
import tempfile
import time


class AgentProcess:
    """sandbox-agent with `arguments` (e.g. `--protocol vercel`) serving a temporary folder."""

    def __init__(self, binary, arguments=(), token=None, name="agent", folders=(), root=None):
        # A given root (e.g. "/") is served as it is and never removed.
        self.owns_root = root is None
        self.root = tempfile.mkdtemp(prefix=f"sdk-{name}-root-") if root is None else root
        for folder in folders:
            os.makedirs(os.path.join(self.root, folder.lstrip("/")), exist_ok=True)
        command = [binary, *arguments, "--listen", "127.0.0.1:0", "--root", self.root]
        self.token = token
        self.token_dir = None
        if token is not None:
            self.token_dir = tempfile.mkdtemp(prefix=f"sdk-{name}-token-")
            self.token_file = os.path.join(self.token_dir, "token")
            with open(self.token_file, "w") as f:
                f.write(token)
            command += ["--token-file", self.token_file]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
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

    def host_path(self, path, cwd="/"):
        """Where a sandbox path (relative ones start in `cwd`) lives on this machine."""
        if not path.startswith("/"):
            path = cwd.rstrip("/") + "/" + path
        return os.path.join(self.root, path.lstrip("/"))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.token_dir is not None:
            shutil.rmtree(self.token_dir, ignore_errors=True)
