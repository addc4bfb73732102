"""Plays the cri-runtime server in a test: spawn a relay, report it, wait to be killed.

Usage: python fake_server.py IO_DIR LOG_PATH  (prints one JSON line: the relay handle)
"""

from __future__ import annotations

import asyncio
import json
import sys

from cri_runtime.containers.relay import client


async def main() -> None:
    handle = await client.spawn(sys.argv[1], client.RelayConfig(log_path=sys.argv[2], stdin=True))
    print(json.dumps({"pid": handle.pid, "stdin": handle.stdin, "stdout": handle.stdout,
                      "stderr": handle.stderr}), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main())
