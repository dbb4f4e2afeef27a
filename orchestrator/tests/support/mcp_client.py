"""A real MCP client (the official `mcp` Python SDK) for Parley's MCP tests.

    python mcp_client.py stdio PARLEY_BINARY SERVER_URL API_KEY < calls.json
    python mcp_client.py http MCP_URL API_KEY < calls.json

calls.json is a list of [tool, arguments]. Prints one JSON object: the server's name, the tools it
lists, and for each call whether it is an error and its text.
"""

import asyncio
import json
import os
import sys

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


async def session_run(read, write, calls):
    async with ClientSession(read, write) as session:
        init = await session.initialize()
        tools = await session.list_tools()
        results = []
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            texts = [c.text for c in result.content if c.type == "text"]
            results.append({"tool": name, "is_error": bool(result.is_error), "text": "\n".join(texts)})
        return {
            "server": init.server_info.name,
            "tools": [
                {"name": t.name, "description": t.description, "schema": t.input_schema}
                for t in sorted(tools.tools, key=lambda t: t.name)
            ],
            "results": results,
        }


async def main():
    mode = sys.argv[1]
    calls = json.load(sys.stdin)
    if mode == "stdio":
        binary, url, key = sys.argv[2:5]
        params = StdioServerParameters(
            command=binary,
            args=["mcp", "--url", url],
            env={**os.environ, "PARLEY_API_KEY": key},
        )
        async with stdio_client(params) as (read, write):
            out = await session_run(read, write, calls)
    else:
        url, key = sys.argv[2:4]
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                out = await session_run(read, write, calls)
    print(json.dumps(out))


asyncio.run(main())
