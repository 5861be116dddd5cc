"""The SDK's token path: `Sandbox.connect(ID)` through a stand-in for the E2B API, then envd calls
with the access token it hands out; and the URLs the SDK builds for plain HTTP clients."""

import httpx
import pytest
from e2b import (
    AuthenticationException,
    NotFoundException,
    Sandbox,
    SandboxNotFoundException,
)


def test_connect_with_a_token(api_environment, token_agent):
    sbx = Sandbox.connect("isbx-agent")
    path, headers, _ = api_environment.calls[-1]
    assert path == "/v2/sandboxes/isbx-agent/connect"
    assert headers["x-api-key"] == api_environment.api_key
    assert sbx.sandbox_id == "isbx-agent"
    sbx.files.write("/token/hello.txt", "through the token")
    assert sbx.files.read("/token/hello.txt") == "through the token"
    assert [e.name for e in sbx.files.list("/token")] == ["hello.txt"]
    assert sbx.commands.run("echo token").stdout == "token\n"
    handle = sbx.commands.run("cat", background=True, stdin=True)
    handle.send_stdin("in\n")
    sbx.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "in\n"


def test_a_bad_api_key_is_refused_by_the_api(api_environment, monkeypatch):
    monkeypatch.setenv("E2B_API_KEY", "e2b_" + "0" * 40)
    with pytest.raises(AuthenticationException):
        Sandbox.connect("isbx-agent")


def test_an_unknown_sandbox_is_not_found(api_environment):
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect("isbx-unknown")


def test_a_wrong_access_token_is_refused_by_the_agent(api_environment):
    sbx = Sandbox.connect("isbx-wrong-token")
    with pytest.raises(AuthenticationException):
        sbx.files.read("/token/anything.txt")
    with pytest.raises(AuthenticationException):
        sbx.files.write("/token/anything.txt", "x")
    with pytest.raises(AuthenticationException):
        sbx.files.list("/")
    with pytest.raises(AuthenticationException):
        sbx.commands.run("echo never")


def test_unsigned_download_url_without_a_token(sandbox, folder):
    sandbox.files.write(f"{folder}/plain.txt", "plain download")
    url = sandbox.download_url(f"{folder}/plain.txt")
    assert httpx.get(url).text == "plain download"


def test_signed_download_and_upload_urls(api_environment):
    sbx = Sandbox.connect("isbx-agent")
    sbx.files.write("/token/signed.txt", "signed download")
    assert httpx.get(sbx.download_url("/token/signed.txt")).text == "signed download"
    upload = sbx.upload_url("/token/uploaded.txt", use_signature_expiration=60)
    assert httpx.post(upload, files={"file": ("uploaded.txt", b"signed upload")}).status_code == 200
    assert sbx.files.read("/token/uploaded.txt") == "signed upload"
    as_root = sbx.download_url("/token/signed.txt", user="root", use_signature_expiration=60)
    assert httpx.get(as_root).text == "signed download"


def test_signed_urls_are_refused_when_expired_or_for_another_use(api_environment):
    sbx = Sandbox.connect("isbx-agent")
    sbx.files.write("/token/signed.txt", "x")
    expired = httpx.get(sbx.download_url("/token/signed.txt", use_signature_expiration=-5))
    assert (expired.status_code, expired.json()) == (
        401,
        {"code": 401, "message": "signature is already expired"},
    )
    # A read signature does not sign a write, nor another path.
    read_url = sbx.download_url("/token/signed.txt")
    wrong_use = httpx.post(read_url, files={"file": ("f", b"y")})
    assert (wrong_use.status_code, wrong_use.json()["message"]) == (401, "invalid signature")
    other = httpx.get(read_url.replace("signed.txt", "other.txt"))
    assert (other.status_code, other.json()["message"]) == (401, "invalid signature")
    assert sbx.files.read("/token/signed.txt") == "x"


def test_missing_file_through_the_token_path_is_not_found(api_environment):
    sbx = Sandbox.connect("isbx-agent")
    with pytest.raises(NotFoundException):
        sbx.files.read("/token/missing.txt")
