"""Plays the cri-runtime server in a test: spawn a relay, report it, wait to be killed.

Usage: python fake_server.py IO_DIR LOG_PATH [--zygote OWNER]
(prints one JSON line: the relay handle, and with --zygote the zygote's pid; the relay is
then forked by a relay zygote, as the real server does)
"""

from __future__ import annotations

import asyncio
import json
import sys

from cri_runtime.containers.relay import client
from cri_runtime.containers.relay.launcher import RelayLauncher


async def main() -> None:
    config = client.RelayConfig(log_path=sys.argv[2], stdin=True)
    zygote_pid = None
    if sys.argv[3:4] == ["--zygote"]:
        launcher = RelayLauncher(sys.argv[4])
        handle = await launcher.spawn(sys.argv[1], config)
        zygote_pid = launcher.zygote_pid
    else:
        handle = await client.spawn(sys.argv[1], config)
    print(json.dumps({"pid": handle.pid, "stdin": handle.stdin, "stdout": handle.stdout,
                      "stderr": handle.stderr, "zygote": zygote_pid}), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main())
