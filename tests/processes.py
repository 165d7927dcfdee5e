"""Real processes for tests: `hotline serve` on a free port, talked to over HTTP."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from hotline.bench.processes import free_port as free_port
from hotline.service.config import demo_config_path


class Service:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.env = os.environ | {"HOTLINE_DATA_DIR": str(data_dir)} | (env or {})
        self.env.pop("HOTLINE_REDIS_URL", None) if env is None else None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start_args: list[str] = []

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hotline",
                    "serve",
                    "--demo",
                    "--port",
                    str(self.port),
                    *self.start_args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            code = self.process.poll()
            assert code is None, f"exited with {code}:\n" + self.log.read_text()
            try:
                if self.get("/healthz")["status"] == "ok":
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError("service did not start:\n" + self.log.read_text())

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> float:
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(sig)
        assert self.process.wait(timeout=10) == 0, self.log.read_text()
        return time.monotonic() - began

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.base + path, headers={"Accept": "application/json"})
        with self.opener.open(request, timeout=5) as resp:
            return json.loads(resp.read())

    def get_status(self, path_or_code: str) -> int:
        """The HTTP status of GET /track/CODE (or of a path)."""
        path = path_or_code if path_or_code.startswith("/") else f"/track/{path_or_code}"
        try:
            with self.opener.open(self.base + path, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def submit(self, text: str) -> str:
        with self.opener.open(self.base + "/submit", timeout=5) as resp:
            html = resp.read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token
        body = urllib.parse.urlencode({"csrf_token": token.group(1), "text": text}).encode()
        request = urllib.request.Request(
            self.base + "/submit", data=body, headers={"Accept": "application/json"}
        )
        with self.opener.open(request, timeout=5) as resp:
            assert resp.status == 201
            code: str = json.loads(resp.read())["code"]
            return code

    def wait_assigned(self, code: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data: dict[str, Any] = self.get(f"/track/{code}")
            if data["status"] == "assigned":
                return data
            time.sleep(0.05)
        raise AssertionError(f"{code} was not routed")


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`hotline worker` for the demo point, answering its health checks on a port of its own."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hotline", "worker", "--health-port", str(free_port())],
            env=env | {"HOTLINE_CONFIG": str(demo_config_path())},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def kill_all(processes: list[subprocess.Popen[bytes] | None]) -> None:
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
