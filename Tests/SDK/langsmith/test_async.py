"""The SDK's async client over the same routes: files, a run, a stream with stdin, SSE."""

import asyncio


def test_async_client_end_to_end(agent, monkeypatch):
    from langsmith.sandbox import AsyncSandboxClient

    async def scenario():
        async with AsyncSandboxClient(api_endpoint=agent.url + "/api/v2/sandboxes", api_key="k") as client:
            box = await client.get_sandbox("async-box")
            await box.write("async/f.txt", b"async bytes")
            assert await box.read("async/f.txt") == b"async bytes"
            result = await box.run("cat async/f.txt; echo e >&2; exit 7")
            assert (result.stdout, result.stderr, result.exit_code) == ("async bytes", "e\n", 7)
            handle = await box.run("cat", wait=False, close_input=False)
            await handle.send_input("piped\n")
            await handle.close_input()
            assert (await handle.result).stdout == "piped\n"
            monkeypatch.setenv("LANGSMITH_EXPERIMENTAL_FEATURES", "sandbox_sse_exec")
            over_sse = await box.run("echo sse")
            assert over_sse.stdout == "sse\n"

    asyncio.run(scenario())
