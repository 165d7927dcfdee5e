"""`hotline serve` as a real process: embedded Redis, its worker child, clean stop, restart."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotline.bench.postgres import PostgresCluster
from hotline.cli import listening_sockets
from hotline.queue.embedded import EmbeddedRedis
from hotline.service.config import demo_config_path
from tests.processes import Service, free_port, process_alive


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path / "var")
    yield svc
    if svc.process and svc.process.poll() is None:
        svc.process.kill()
        svc.process.wait()


@pytest.mark.timeout(90)
def test_serve_demo_routes_stops_cleanly_and_restarts_on_the_same_data(service: Service) -> None:
    service.start()
    redis_pid = int((service.data_dir / "redis" / "redis.pid").read_text())
    code = service.submit("园区路灯坏了")
    assert service.wait_assigned(code)["assignee"]["id"] in {"chen", "zhu", "wang"}
    # The SMS path without a Twilio account: a signed, Twilio-shaped text.
    env = {k: v for k, v in service.env.items() if k != "TWILIO_AUTH_TOKEN"}
    sms = subprocess.run(
        [sys.executable, "-m", "hotline", "sms", "send", "--from", "+8613900000001",
         "--url", service.base, "厂区门口积水严重"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert sms.returncode == 0, sms.stderr
    assert sms.stdout.startswith("已收到您的诉求，编号 ")
    sms_code = sms.stdout.split("编号 ")[1][:7]
    assert service.wait_assigned(sms_code)["channel"] == "sms"
    assert service.stop(signal.SIGTERM) < 6
    assert not process_alive(redis_pid)
    redis_dir = service.data_dir / "redis"
    assert (redis_dir / "appendonly.aof").is_file() or (redis_dir / "appendonlydir").is_dir()
    with sqlite3.connect(service.data_dir / "hotline.sqlite3") as db:
        cases_before = db.execute("SELECT count(*) FROM cases").fetchone()[0]
    # The demo's past months (48), its four new requests, the three raised at its reception,
    # ours by web and by SMS.
    assert cases_before == 48 + 3 + 6

    service.start()  # a second start reuses the data: no new demo cases, old code tracks
    assert service.get(f"/track/{code}")["status"] == "assigned"
    second = service.submit("second request")
    service.wait_assigned(second)
    redis_pid = int((service.data_dir / "redis" / "redis.pid").read_text())
    assert service.stop(signal.SIGINT) < 6  # Ctrl-C
    assert not process_alive(redis_pid)
    with sqlite3.connect(service.data_dir / "hotline.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM cases").fetchone()[0] == cases_before + 1


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(p) for p in found]


def worker_of(pid: int) -> int:
    """The pid of `serve`'s worker child (its other child is redis-server)."""
    for child in children(pid):
        argv = Path(f"/proc/{child}/cmdline").read_text().split("\0")
        if argv[1:4] == ["-m", "hotline", "worker"]:  # (the test's data dir may say "worker")
            return child
    raise AssertionError("no worker child")


def own_health(pid: int) -> object:
    """What a worker child's own /healthz says, on the loopback port `serve` gave it."""
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    port = argv[argv.index("--health-port") + 1]
    assert argv[argv.index("--health-host") + 1] == "127.0.0.1"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.timeout(90)
def test_serve_routes_in_a_worker_child_it_restarts_and_stops(service: Service) -> None:
    service.start()
    assert service.process is not None
    first = worker_of(service.process.pid)
    assert own_health(first) == {"status": "ok"}  # what serve's /healthz asks it
    service.wait_assigned(service.submit("the router runs in the child"))
    # serve's /metrics gives the child's router figures (its own router does not run).
    with urllib.request.urlopen(service.base + "/metrics", timeout=10) as resp:
        families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
    batches = [s.value for s in families["hotline_router_batch_size"].samples
               if s.name.endswith("_count")]  # fmt: skip
    assert batches and batches[0] >= 1
    up = {s.labels["backend"]: s.value for s in families["hotline_backend_up"].samples}
    assert up == {"redis": 1.0, "database": 1.0, "worker": 1.0}
    os.kill(first, signal.SIGKILL)  # the worker dies: serve starts another
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            if worker_of(service.process.pid) != first:
                break
        time.sleep(0.1)
    second = worker_of(service.process.pid)
    assert second != first
    assert own_health(second) == {"status": "ok"}
    # Entries the killed worker held are reclaimed (its heartbeat is gone); new ones routed.
    service.wait_assigned(service.submit("routed by the second worker"))
    assert service.get("/healthz")["status"] == "ok"
    assert service.stop(signal.SIGTERM) < 8
    assert not process_alive(second)


@pytest.mark.timeout(60)
def test_a_second_sigterm_while_serve_stops_does_not_cut_its_cleanup_short(
    service: Service,
) -> None:
    """A process manager and an impatient operator each send SIGTERM: the second, sent while
    serve stops, is noted and the cleanup finishes (it used to be cancelled half done, the
    exit code 1, and once the process hung at exit on the database's threads)."""
    service.start()
    assert service.process is not None
    child = worker_of(service.process.pid)
    redis_pid = int((service.data_dir / "redis" / "redis.pid").read_text())
    service.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # stopping: its listener is closed first
        try:
            socket.create_connection(("127.0.0.1", service.port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.01)
    # Sent while the cleanup runs (the worker child's stop alone takes a few hundred ms);
    # sent at once, the kernel could merge it with the first.
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=20) == 0
    log = service.log.read_text()
    assert "already stopping" in log and "Traceback" not in log
    assert not process_alive(child) and not process_alive(redis_pid)


@pytest.mark.timeout(60)
def test_two_signals_at_once_stop_serve_once(service: Service) -> None:
    """Ctrl-C and a wrapper's forwarded signal arrive together (here SIGINT and SIGTERM,
    which the kernel cannot merge): both are read in one turn of the loop, and the second
    must not cut the cleanup short as it did."""
    service.start()
    assert service.process is not None
    child = worker_of(service.process.pid)
    os.kill(service.process.pid, signal.SIGINT)
    os.kill(service.process.pid, signal.SIGTERM)
    assert service.process.wait(timeout=20) == 0
    log = service.log.read_text()
    assert "Traceback" not in log and "CleanupError" not in log
    assert not process_alive(child)


@pytest.mark.timeout(60)
def test_serve_uses_an_external_redis_when_told(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    svc = Service(tmp_path / "var", env={"HOTLINE_REDIS_URL": redis_server.url})
    try:
        svc.start()
        code = svc.submit("external redis")
        svc.wait_assigned(code)
        assert not (svc.data_dir / "redis").exists()  # no embedded redis-server started
    finally:
        if svc.process and svc.process.poll() is None:
            svc.stop()


def test_serve_without_config_explains(tmp_path: Path) -> None:
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path)}
    env.pop("HOTLINE_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "hotline", "serve"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "set HOTLINE_CONFIG" in result.stderr


def test_worker_needs_a_shared_redis(tmp_path: Path) -> None:
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path), "HOTLINE_CONFIG": "x.toml"}
    env.pop("HOTLINE_REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "hotline", "worker"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "HOTLINE_REDIS_URL" in result.stderr


@pytest.mark.timeout(60)
def test_a_worker_routes_and_answers_its_health_check(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    """serve --no-worker takes requests; a separate worker routes them and is alive."""
    svc = Service(tmp_path / "var", env={"HOTLINE_REDIS_URL": redis_server.url})
    svc.start_args = ["--no-worker"]
    health = free_port()
    worker = None
    try:
        svc.start()
        code = svc.submit("routed by a worker")
        env = svc.env | {"HOTLINE_CONFIG": str(demo_config_path())}
        with open(tmp_path / "worker.log", "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "hotline", "worker", "--health-port", str(health)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        svc.wait_assigned(code)
        url = f"http://127.0.0.1:{health}/healthz"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert json.load(resp) == {"status": "ok"}
        with pytest.raises(urllib.error.HTTPError):  # only the health checks listen there
            urllib.request.urlopen(f"http://127.0.0.1:{health}/submit", timeout=5)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if worker and worker.poll() is None:
            worker.kill()
        if svc.process and svc.process.poll() is None:
            svc.stop()


@pytest.mark.timeout(60)
def test_a_worker_whose_health_port_is_taken_says_so_and_exits(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path), "HOTLINE_REDIS_URL": redis_server.url}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "hotline", "worker", "--demo", "--health-port", str(port)],
            env=env, capture_output=True, text=True, timeout=50,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1 port {port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_create_list_revoke(tmp_path: Path) -> None:
    """`hotline token`: printed once, only a hash kept, a name active once, revoked by name."""
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path)}

    def token(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hotline", "token", *args, "--demo"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    made = token("create", "town-office", "--scope", "write")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.split()[0]
    assert secret.startswith("hl_") and len(secret) > 40
    with sqlite3.connect(tmp_path / "hotline.sqlite3") as db:
        stored = db.execute("SELECT token_hash, scope FROM api_tokens").fetchall()
    assert stored and secret not in str(stored) and stored[0][1] == "write"
    again = token("create", "town-office")
    assert again.returncode == 1 and "name:" in again.stderr
    listed = token("list")
    assert "town-office\twrite" in listed.stdout and secret not in listed.stdout
    assert re.search(
        r"made \d{4}-\d\d-\d\d \d\d:\d\d UTC by cli\tlast used -\tactive", listed.stdout
    )
    assert token("revoke", "town-office").returncode == 0
    assert "revoked" in token("list").stdout
    assert token("revoke", "town-office").returncode == 1
    bad = token("create", "two words")
    assert bad.returncode != 0


def test_a_worker_without_redis_or_config_says_what_it_needs(tmp_path: Path) -> None:
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path)}
    for name in ("HOTLINE_REDIS_URL", "HOTLINE_CONFIG"):
        env.pop(name, None)
    for args in ([], ["--demo"]):
        result = subprocess.run(
            [sys.executable, "-m", "hotline", "worker", *args],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 2
        assert "HOTLINE_REDIS_URL" in result.stderr and "--demo" not in result.stderr


@pytest.mark.timeout(60)
def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path / "var")}
        env.pop("HOTLINE_REDIS_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "hotline", "serve", "--demo", "--no-worker",
             "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=50,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var").exists()  # said before anything was started or written


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--host", "bogus.invalid"], "is not an address to listen on"),
        (["--host", "10.255.255.1"], "cannot be listened on"),  # not this machine's
        (["--port", "70000"], "'70000' is not a port (0 to 65535)"),
        (["--port", "-1"], "'-1' is not a port"),
    ],
)
def test_an_address_or_port_that_cannot_be_listened_on_is_one_clear_line(
    tmp_path: Path, args: list[str], said: str
) -> None:
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "hotline", "serve", "--demo", "--no-worker", *args],
        env=env, capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "var").exists()


def test_serve_listens_on_every_address_a_host_name_gives() -> None:
    """As aiohttp would by itself: `--host localhost` may be 127.0.0.1 and ::1, and both
    answer; with --port 0, on one port the system chose."""
    sockets = listening_sockets("localhost", 0)
    try:
        named = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)
        assert {s.getsockname()[0] for s in sockets} == {a[4][0] for a in named}
        assert len({s.getsockname()[1] for s in sockets}) == 1
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.timeout(90)
def test_a_second_serve_on_a_data_dir_in_use_is_refused_and_harms_nothing(
    tmp_path: Path,
) -> None:
    """The first one's embedded Redis is not taken for a stale one and stopped: the second
    is refused at once, naming the process that has the data dir."""
    first = Service(tmp_path / "var")
    first.start_args = ["--no-worker"]
    first.start()
    try:
        redis_pid = int((tmp_path / "var" / "redis" / "redis.pid").read_text())
        second = subprocess.run(
            [sys.executable, "-m", "hotline", "serve", "--demo", "--no-worker",
             "--port", str(free_port())],
            env=first.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert "is in use by another hotline process" in second.stderr, second.stderr
        assert f"(pid {first.process.pid})" in second.stderr  # type: ignore[union-attr]
        assert "Traceback" not in second.stderr
        assert process_alive(redis_pid) and first.get("/readyz")["status"] == "ready"
        assert "starting it again" not in first.log.read_text()
    finally:
        first.stop()


# Six threads alive at once, each allocating: glibc gives each an arena of its own unless
# limited; malloc_stats() prints one "Arena N:" block per arena.
_ARENAS = """
import ctypes, sys, threading
from hotline.cli import limit_malloc_arenas
print(limit_malloc_arenas(), flush=True)
both = threading.Barrier(6)
def work():
    both.wait()
    kept = [bytearray(1000) for _ in range(1000)]
    both.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
@pytest.mark.parametrize(
    ("environment", "applied", "arenas"),
    [
        ({}, "True", 2),
        ({"MALLOC_ARENA_MAX": "3"}, "False", 3),
        ({"GLIBC_TUNABLES": "glibc.malloc.check=0:glibc.malloc.arena_max=4"}, "False", 4),
    ],
)
def test_serve_limits_the_allocators_arenas_unless_the_environment_says(
    environment: dict[str, str], applied: str, arenas: int
) -> None:
    said, counted = _arenas(environment, limit=True)
    assert (said, counted) == (applied, arenas)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_without_the_limit_each_thread_takes_an_arena() -> None:
    """What the limit saves: the same threads take an arena each (the main thread's besides)."""
    _, counted = _arenas({}, limit=False)
    assert counted > 3


def _arenas(environment: dict[str, str], *, limit: bool) -> tuple[str, int]:
    """What limit_malloc_arenas answered in a fresh process (with `limit`), and how many
    arenas its threads then had."""
    unset = ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")
    env = {k: v for k, v in os.environ.items() if k not in unset} | environment
    script = _ARENAS if limit else _ARENAS.replace("print(limit_malloc_arenas()", "print((0)")
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip(), run.stderr.count("Arena ")


def test_dead_letters_are_listed_and_put_back(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    """`hotline dead-letters list|requeue` against the service's Redis: each dead letter
    with its stream, ids and reason (an intake's text left out); put back by id or all at
    once; an unknown id or a malformed one is named, and nothing is moved."""
    import redis as sync_redis

    from hotline.queue import keys

    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushall()
    for n in range(2):
        fields = {"kind": "case", "code": f"CODE00{n}", "intake": "秘密", "id": f"1-{n}",
                  "reason": "failed 5 times: disk full"}  # fmt: skip
        client.xadd(keys.INTAKE_DEAD, fields)  # type: ignore[arg-type]
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path), "HOTLINE_REDIS_URL": redis_server.url}

    def dead(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hotline", "dead-letters", *args, "--demo"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    listed = dead("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 2 and "秘密" not in listed.stdout
    assert lines[0].startswith("intake\t") and "(was 1-0)" in lines[0] and "disk full" in lines[0]
    first = lines[0].split("\t")[1]
    assert dead("requeue", "12x").returncode == 2
    assert dead("requeue").returncode == 2  # neither ids nor --all
    unknown = dead("requeue", "1-1")
    assert unknown.returncode == 1 and "no such dead letter in intake: 1-1" in unknown.stderr
    one = dead("requeue", first)
    assert one.returncode == 0 and first in one.stdout
    assert client.xlen(keys.INTAKE_STREAM) == 1 and client.xlen(keys.INTAKE_DEAD) == 1
    ((_, back),) = client.xrange(keys.INTAKE_STREAM)  # type: ignore[misc]
    assert back == {b"kind": b"case", b"code": b"CODE000", b"intake": "秘密".encode()}
    rest = dead("requeue", "--all")
    assert rest.returncode == 0 and client.xlen(keys.INTAKE_STREAM) == 2
    assert dead("list").stdout.strip() == "no dead letters"
    assert dead("requeue", "--all").stdout.strip() == "no dead letters in intake"
    too_big = dead("requeue", f"{2**64}-0")
    assert too_big.returncode == 2 and "not a dead letter's id" in too_big.stderr
    client.flushall()
    client.close()


def test_dead_letters_of_a_stopped_service_are_read_from_its_files(tmp_path: Path) -> None:
    """The embedded default with the service stopped: the command starts a redis-server on
    the data dir's files for its own time, and what it puts back is there at the next
    start (the AOF)."""
    import redis as sync_redis

    from hotline.queue import keys

    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    with sync_redis.Redis.from_url(server.url) as client:
        client.xadd(keys.OUTBOUND_DEAD, {"id": "17", "entry": "5-0", "reason": "the database"})
        # Set aside before "entry": its stream id overwrote the outbox row's; nothing to
        # put back, so it stays, named.
        old = client.xadd(keys.OUTBOUND_DEAD, {"id": "4-0", "reason": "not an outbox row id"})
    server.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["HOTLINE_DATA_DIR"] = str(tmp_path)

    def dead(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hotline", "dead-letters", *args, "--demo"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    listed = dead("list", "--stream", "outbound")
    assert listed.returncode == 0, listed.stderr
    first, second = listed.stdout.strip().splitlines()
    assert first.startswith("outbound\t") and "(was 5-0)\tthe database\tid=17" in first
    assert "(was 4-0)\tnot an outbox row id" in second
    assert dead("list", "--stream", "intake").stdout.strip() == "no dead letters in intake"
    assert not (tmp_path / "secret_key").exists()  # reading makes nothing in the data dir
    both = dead("requeue", "--all", "--stream", "outbound")
    assert both.returncode == 1
    assert f"none of its own fields is left in outbound: {old.decode()}" in both.stderr
    server.start()
    try:
        with sync_redis.Redis.from_url(server.url) as client:
            assert client.xlen(keys.OUTBOUND_DEAD) == 1  # the one with nothing to put back
            ((_, back),) = client.xrange(keys.OUTBOUND_STREAM)
            assert back == {b"id": b"17"}  # the outbox row it names
    finally:
        server.stop()
    # Its files damaged: said in a line, no traceback.
    (tmp_path / "redis" / "appendonly.aof").write_text("garbage")
    for stale in (tmp_path / "redis").glob("*.rdb"):
        stale.unlink()
    broken = dead("list")
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert "the data dir's Redis cannot be started" in broken.stderr


def _hotline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args], env=os.environ | env,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        ({"HOTLINE_REDIS_URL": "garbage"}, ["token", "list", "--demo"],
         "HOTLINE_REDIS_URL must be redis://, rediss:// or unix://"),
        ({"HOTLINE_DATABASE_URL": "postgresql://x@127.0.0.1:1/db"}, ["token", "list", "--demo"],
         "hotline: Connect call failed"),  # no database answers there
        ({}, ["check-config", "/dev/zero"], "/dev/zero: 1 problem(s)"),
        ({}, ["check-config", "/"], "not a file"),
        ({}, ["check-config", "/no/such/point.toml"], "no such file"),
        ({}, ["sms", "send", "--from", "+8613900000001", "--url", "notaurl", "hi"],
         "'notaurl' is not an http(s) address"),
        ({}, ["sms", "send", "--from", "+8613900000001", "--url", "http://[::1", "hi"],
         "is not an http(s) address"),
        ({}, ["sms", "send", "--from", os.fsdecode(b"+86\xff"), "hi"],
         "--from is not UTF-8"),
        ({"HOTLINE_REDIS_URL": "redis://:secret@[::1:6379/0"}, ["token", "list", "--demo"],
         "HOTLINE_REDIS_URL is not a valid address"),
    ],
)  # fmt: skip
def test_bad_settings_and_arguments_are_one_clear_line(
    tmp_path: Path, env: dict[str, str], args: list[str], said: str
) -> None:
    result = _hotline({"HOTLINE_DATA_DIR": str(tmp_path / "var")} | env, *args)
    assert result.returncode != 0 and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_this_program_cannot_run_on_is_one_clear_line(
    tmp_path: Path, postgres: PostgresCluster | str
) -> None:
    """A database migrated by a newer program, and PostgreSQL refusing the role or the
    database named: one line each, no traceback, for every command that opens the store."""
    data = tmp_path / "var"
    assert _hotline({"HOTLINE_DATA_DIR": str(data)}, "token", "list", "--demo").returncode == 0
    with sqlite3.connect(data / "hotline.sqlite3") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    for args in (["token", "list"], ["serve", "--port", str(free_port())]):
        result = _hotline({"HOTLINE_DATA_DIR": str(data)}, *args, "--demo")
        assert result.returncode == 1 and "newer than this program knows" in result.stderr
        assert "Traceback" not in result.stderr, result.stderr
    # serve had started its Redis before opening the store: stopped again, there and then.
    assert not (data / "redis" / "redis.sock").exists()
    if isinstance(postgres, str):
        wrong = urllib.parse.urlsplit(postgres)._replace(path="/no_such_database").geturl()
    else:
        wrong = postgres.url("no_such_database")
    result = _hotline({"HOTLINE_DATA_DIR": str(tmp_path / "pg"), "HOTLINE_DATABASE_URL": wrong},
                      "token", "list", "--demo")  # fmt: skip
    assert result.returncode == 1 and "the database refused" in result.stderr, result.stderr
    assert "no_such_database" in result.stderr and "Traceback" not in result.stderr


def test_a_password_with_stdin_closed_or_not_utf8_is_refused(tmp_path: Path) -> None:
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path / "var"), "LC_ALL": "C.UTF-8"}
    closed = subprocess.run(
        [sys.executable, "-m", "hotline", "member", "password", "chen", "--demo"], env=env,
        capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert closed.returncode == 1 and "stdin is closed" in closed.stderr, closed.stderr
    garbled = subprocess.run(
        [sys.executable, "-m", "hotline", "member", "password", "chen", "--demo"], env=env,
        capture_output=True, input=b"\xff\xfe-long-password\n", timeout=60,
    )  # fmt: skip
    assert garbled.returncode == 1 and b"not UTF-8" in garbled.stderr, garbled.stderr


def test_a_data_dir_that_is_a_file_and_a_config_nested_too_deep(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("not a folder")
    result = _hotline({"HOTLINE_DATA_DIR": str(tmp_path / "var")}, "token", "list", "--demo")
    assert result.returncode == 2 and "HOTLINE_DATA_DIR must be a folder" in result.stderr
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    result = _hotline({}, "check-config", str(deep))
    assert result.returncode == 1 and "nested too deeply" in result.stderr
    assert "Traceback" not in result.stderr


def test_sms_send_to_what_is_no_hotline_says_so(tmp_path: Path) -> None:
    """A page that is no webhook (a 404 page, a 200 that is no TwiML): one line each."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        args = ["sms", "send", "--from", "+8613900000001", "--url", f"http://127.0.0.1:{port}"]
        result = _hotline({}, *args, "hi")  # http.server answers a POST 501, as a page
        assert result.returncode == 1 and "is no hotline SMS webhook" in result.stderr
        assert "<html" not in result.stderr.lower() and "Traceback" not in result.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_body_that_cannot_be_read_is_one_warning_line() -> None:
    """`Content-Encoding: gzip` over plain bytes: the form answers 400 naming the body, then
    aiohttp reads the rest to keep the connection and fails: a client's fault, one line,
    not forty of traceback at ERROR for anyone to provoke."""
    from aiohttp.web_protocol import RequestPayloadError

    from hotline.cli import _client_fault

    try:
        raise RequestPayloadError("Can not decode content-encoding: gzip")
    except RequestPayloadError:
        record = logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Unhandled exception", None,
            sys.exc_info(),
        )  # fmt: skip
    assert _client_fault(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == (
        "a request body that cannot be read: Can not decode content-encoding: gzip"
    )


def test_a_new_data_dir_and_database_are_their_owners_alone(tmp_path: Path) -> None:
    """Every request's text and phone number lives there: no other user of the machine
    reads the database, Redis's files or the spool."""
    data = tmp_path / "var"
    assert _hotline({"HOTLINE_DATA_DIR": str(data)}, "token", "list", "--demo").returncode == 0
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "hotline.sqlite3").stat().st_mode & 0o777 == 0o600
    assert (data / "secret_key").stat().st_mode & 0o777 == 0o600
