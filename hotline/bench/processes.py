"""The processes a bench round starts (`hotline serve`, `hotline worker`, the baseline): Python
modules of this install, their output in a log file, stopped with SIGTERM (then SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from hotline.queue.children import free_port as free_port  # the bench's servers pick one too


async def spawn(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`python ARGS...` with stdout and stderr appended to `log`."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        os.close(out)


async def stop(process: asyncio.subprocess.Process, grace: float = 20.0) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()
