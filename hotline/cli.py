"""The `hotline` command: serve, worker, check-config."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import errno
import logging
import os
import re
import signal
import socket
import sys
from datetime import datetime
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from redis.exceptions import RedisError

from hotline import __version__
from hotline.queue.errors import REDIS_DOWN
from hotline.service.config import ConfigError
from hotline.service.configfile import config_warnings, load_config
from hotline.service.duty import PACKAGE_KNOWS_UNTIL, calendar_warning
from hotline.service.i18n import Refusal
from hotline.service.settings import Settings, SettingsError, make_data_dir

log = logging.getLogger("hotline")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the web service (and its worker in a child process, unless --no-worker)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=_port, default=8080, help="port to listen on (default 8080)")
    serve.add_argument(
        "--demo", action="store_true", help="use the bundled demo point and sample cases"
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="start no worker: run `hotline worker` on the same Redis instead",
    )

    work = commands.add_parser(
        "worker", help="run a router and a sender on the shared Redis (HOTLINE_REDIS_URL)"
    )
    work.add_argument(
        "--health-host", default="127.0.0.1", help="address of /healthz (default 127.0.0.1)"
    )
    work.add_argument(
        "--health-port", type=_port, default=8081, help="port of /healthz (default 8081; 0: none)"
    )
    work.add_argument(
        "--demo", action="store_true", help="for the bundled demo point (as `serve --demo` runs it)"
    )

    back = commands.add_parser(
        "backup", help="a consistent copy of the data while the service runs (see README)"
    )
    back.add_argument("dest", type=Path, help="a new or empty folder")
    back.add_argument("--demo", action="store_true", help="for the bundled demo point")
    restore = commands.add_parser("restore", help="restore a backup into an empty data dir")
    restore.add_argument("source", type=Path, help="a folder made by hotline backup")
    restore.add_argument("--demo", action="store_true", help="for the bundled demo point")

    bench = commands.add_parser(
        "bench", help="measure this machine: starts its own services on loopback (BENCHMARKS.md)"
    )
    bench.add_argument("--quick", action="store_true", help="one short round: proves it runs")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument(
        "--postgres-url",
        help="a PostgreSQL server where bench may create and drop its own databases"
        " (default: a throwaway cluster of the installed PostgreSQL binaries)",
    )
    bench.add_argument(
        "--only",
        action="append",
        choices=("intake", "latency", "drain", "scale"),
        help="measure only this part (repeatable): HTTP intake, SMS to /track latency,"
        " router drain, or the console, reports and /track over a large store",
    )

    check = commands.add_parser("check-config", help="validate a point config file")
    check.add_argument("file", type=Path)

    member = commands.add_parser("member", help="manage members' console accounts")
    member_commands = member.add_subparsers(dest="member_command", required=True, metavar="COMMAND")
    password = member_commands.add_parser(
        "password", help="set a member's console password (read from standard input)"
    )
    password.add_argument("member_id")
    password.add_argument("--demo", action="store_true", help="for the bundled demo point")

    token = commands.add_parser("token", help="API tokens for partners and scripts (/api/v1)")
    token_commands = token.add_subparsers(dest="what", required=True, metavar="COMMAND")
    create = token_commands.add_parser("create", help="make a token and print it (this once)")
    create.add_argument("name", help="who or what uses it, e.g. town-office")
    create.add_argument("--scope", choices=("read", "write"), default="read")
    token_commands.add_parser("list", help="every token: name, scope, made, last used, revoked")
    revoke = token_commands.add_parser("revoke", help="revoke the active token of this name")
    revoke.add_argument("name")
    for sub in token_commands.choices.values():
        sub.add_argument("--demo", action="store_true", help="for the bundled demo point")

    dead = commands.add_parser(
        "dead-letters",
        help="requests and texts set aside after failing: list them, or put them back",
    )
    dead_commands = dead.add_subparsers(dest="dead_command", required=True, metavar="COMMAND")
    shown = dead_commands.add_parser("list", help="each with its stream, ids and reason")
    back = dead_commands.add_parser(
        "requeue", help="put dead letters back on their stream once the cause is fixed"
    )
    back.add_argument("ids", nargs="*", metavar="ID", help="dead letters' ids (from list)")
    back.add_argument("--all", action="store_true", help="every dead letter of the stream")
    for sub in (shown, back):
        sub.add_argument("--stream", choices=("intake", "outbound"),
                         help="only this stream (requeue: default intake)")  # fmt: skip
        sub.add_argument("--demo", action="store_true", help="for the bundled demo point")

    sms = commands.add_parser("sms", help="try the SMS path without a Twilio account")
    sms_commands = sms.add_subparsers(dest="sms_command", required=True, metavar="COMMAND")
    send = sms_commands.add_parser(
        "send", help="post a signed, Twilio-shaped text to a running service; print the reply"
    )
    send.add_argument("--from", dest="sender", required=True, help="the texting number")
    send.add_argument("--to", help="the hotline number (default: the point's first)")
    send.add_argument("--url", help="the service (default HOTLINE_PUBLIC_URL or 127.0.0.1:8080)")
    send.add_argument("text")
    return parser


def _client_fault(record: logging.LogRecord) -> bool:
    """aiohttp logs a request it cannot parse (a NUL in a header, a broken request line) as
    an error with a traceback, though it answers 400: a client's fault, so one warning line
    (a hostile client must not fill the log with tracebacks)."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "refused a malformed HTTP request: %s", (exc.message,)
        record.exc_info = record.exc_text = None
    elif isinstance(exc, RequestPayloadError):
        # A body that cannot be decoded (Content-Encoding: gzip over plain bytes): answered
        # 400 naming it, then aiohttp reads the rest of it to keep the connection, and fails.
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = "a request body that cannot be read: %s", (exc,)
        record.exc_info = record.exc_text = None
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.server").addFilter(_client_fault)
    # Alembic says which dialect it found at every start; the store logs what it migrated.
    logging.getLogger("alembic").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        if args.command == "check-config":
            return check_config(args.file)
        if args.command == "serve":
            return serve(args.host, args.port, demo=args.demo, worker=not args.no_worker)
        if args.command == "worker":
            return worker(args.health_host, args.health_port, demo=args.demo)
        if args.command == "member":
            return member_password(args.member_id, demo=args.demo)
        if args.command in ("backup", "restore"):
            return backup_or_restore(args.command, args.dest if args.command == "backup"
                                     else args.source, demo=args.demo)  # fmt: skip
        if args.command == "sms":
            return sms_send(args.sender, args.text, to=args.to, url=args.url)
        if args.command == "token":
            return tokens(args)
        if args.command == "dead-letters":
            return dead_letters(args)
        if args.command == "bench":
            from hotline.bench import run

            return run(quick=args.quick, as_json=args.json, postgres_url=args.postgres_url,
                       only=args.only)  # fmt: skip
    except (ConfigError, SettingsError) as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine's: a database not answering, a disk, a permission
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"hotline: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except Exception as exc:
        # The database's refusals (a newer schema, a wrong role or database name): said in
        # one line, as a disk's are. Anything else is a fault of ours: its traceback.
        from hotline.service.store.database import DatabaseError, SchemaTooNew

        if isinstance(exc, SchemaTooNew):
            print(f"hotline: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, DatabaseError):
            said = getattr(exc, "orig", None) or exc
            print(f"hotline: the database refused: {said}".rstrip(), file=sys.stderr)
            return 1
        raise
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover


def check_config(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"{path}: OK: point {config.point.id!r} ({config.point.name}), "
        f"{len(config.members)} members, rotation {' -> '.join(config.duty.rotation)}, "
        f"{len(config.departments)} departments, {len(config.categories)} categories"
    )
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    today = datetime.now(config.point.timezone).date()
    ends = calendar_warning(config.duty, today)
    if ends is not None:
        print(
            f"warning: China's holiday calendar is known until {ends} (chinesecalendar"
            f" knows to {PACKAGE_KNOWS_UNTIL}): add next year's [[duty.holiday]] and"
            " [[duty.workday]] to the config, or update chinesecalendar; after that day the"
            " roster counts Monday to Friday as workdays"
        )
    return 0


def member_password(member_id: str, *, demo: bool) -> int:
    """Set a password from stdin: typed twice at a terminal, or one line from a pipe."""
    import getpass

    if sys.stdin is None:  # started with stdin closed
        print("hotline: no password given (stdin is closed)", file=sys.stderr)
        return 1
    try:
        if sys.stdin.isatty():
            password = getpass.getpass(f"New password for {member_id}: ")
            if getpass.getpass("Again: ") != password:
                print("hotline: the passwords do not match", file=sys.stderr)
                return 1
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt
        print("\nhotline: no password set", file=sys.stderr)
        return 1
    except UnicodeDecodeError:
        print("hotline: the password is not UTF-8 text", file=sys.stderr)
        return 1
    try:  # undecodable bytes read as surrogates (a C locale's surrogateescape)
        password.encode("utf-8")
    except UnicodeEncodeError:
        print("hotline: the password is not UTF-8 text", file=sys.stderr)
        return 1
    settings = Settings.from_env(demo=demo, run_worker=False)
    try:
        asyncio.run(_set_password(settings, member_id, password))
    except ValueError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 1
    print(f"password set for {member_id}; their other console sessions end at next use")
    return 0


async def _set_password(settings: Settings, member_id: str, password: str) -> None:
    from hotline.service.accounts import Passwords, check_new_password
    from hotline.service.cases import utcnow
    from hotline.service.directory import Directory
    from hotline.service.store import Store

    check_new_password(password)
    directory = Directory.from_file(settings.config_path)
    make_data_dir(settings.data_dir)
    store = await Store.open(settings.database)
    try:
        await directory.open(store)  # members added in the console count too
        if directory.config.member(member_id) is None:
            raise ValueError(f"no member {member_id!r} in {settings.config_path} or the console")
        await Passwords(settings.argon2_profile).set(store, member_id, password, utcnow())
    finally:
        await store.close()


def tokens(args: argparse.Namespace) -> int:
    """`hotline token create|list|revoke`."""
    settings = Settings.from_env(demo=args.demo, run_worker=False)
    try:
        out = asyncio.run(_tokens(settings, args))
    except Refusal as exc:
        print(f"hotline: {exc.field}: {exc.message % exc.params}", file=sys.stderr)
        return 1
    print(out)
    return 0


def _utc(stored: str) -> str:
    """A stored time (UTC text) to the minute, saying so: 2026-11-27 19:58 UTC."""
    return f"{stored[:10]} {stored[11:16]} UTC"


async def _tokens(settings: Settings, args: argparse.Namespace) -> str:
    from hotline.service.cases import utcnow
    from hotline.service.store import Store
    from hotline.service.tokens import ApiTokens

    make_data_dir(settings.data_dir)
    store = await Store.open(settings.database)
    try:
        book = ApiTokens(store.tokens)
        if args.what == "create":
            secret = await book.create(args.name, args.scope, "cli", utcnow())
            return f"{secret}\n(scope {args.scope}; shown this once: only its hash is kept)"
        if args.what == "revoke":
            await book.revoke(args.name, "cli", utcnow())
            return f"revoked {args.name}"
        rows = [
            f"{t.name}\t{t.scope}\tmade {_utc(t.created_at)} by {t.created_by}"
            f"\tlast used {_utc(t.last_used_at) if t.last_used_at else '-'}"
            f"\t{'revoked ' + _utc(t.revoked_at) if t.revoked_at else 'active'}"
            for t in await book.all()
        ]
        return "\n".join(rows) or "no tokens"
    finally:
        await store.close()


def backup_or_restore(command: str, folder: Path, *, demo: bool) -> int:
    from hotline.backup import BackupError, backup, restore

    # Neither makes a secret key: a backup copies the data dir's, a restore needs it empty.
    settings = Settings.from_env(demo=demo, run_worker=False, make_secret=False)
    try:
        if command == "backup":
            made = backup(settings, folder)
            print(f"backed up {made['cases']} cases and {made['in_flight']} in-flight"
                  f" intake(s) to {folder}")  # fmt: skip
        else:
            done = restore(settings, folder)
            waiting = done["in_flight"] + done["spooled"]
            print(f"restored {done['cases']} cases into {settings.data_dir}; {waiting}"
                  " intake(s) not stored yet wait in the spool and are routed at the next"
                  f" start; the point config is {done['config']}")  # fmt: skip
            if not done["secret_key"]:
                print("the backup holds no secret key (HOTLINE_SECRET_KEY was set): set the"
                      " same HOTLINE_SECRET_KEY for the restored service")  # fmt: skip
            if done["dead"]:
                print(f"requests set aside after failing (dead letters) are in {done['dead']}:"
                      " not put back; look at them before sending them in again")  # fmt: skip
    except BackupError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 1
    return 0


_STREAM_ID = re.compile(r"([0-9]+)-([0-9]+)")
_MOST = 2**64 - 1  # each part of a stream id


def _stream_id(given: str) -> bool:
    found = _STREAM_ID.fullmatch(given)
    return found is not None and all(int(part) <= _MOST for part in found.groups())


def dead_letters(args: argparse.Namespace) -> int:
    """`hotline dead-letters list|requeue`: each line as it is done, so a Redis lost
    half-way leaves the moved ones said."""
    from hotline.backup import BackupError

    if args.dead_command == "requeue":
        bad = [given for given in args.ids if not _stream_id(given)]
        if bad or bool(args.ids) == args.all:
            why = f"not a dead letter's id: {bad[0]}" if bad else "give the ids, or --all"
            print(f"hotline: dead-letters requeue: {why}", file=sys.stderr)
            return 2
    # Reads, and writes to Redis alone: no secret key made in a data dir (a mistyped one
    # would no longer be empty for `restore`).
    settings = Settings.from_env(demo=args.demo, run_worker=False, make_secret=False)
    try:
        return asyncio.run(_dead_letters(settings, args))
    except REDIS_DOWN as exc:
        print(f"hotline: Redis cannot be reached: {exc}", file=sys.stderr)
    except RedisError as exc:  # out of memory, read-only, refused by an ACL
        print(f"hotline: Redis refused: {exc}", file=sys.stderr)
    except BackupError as exc:  # the data dir's redis-server would not start
        print(f"hotline: {exc}", file=sys.stderr)
    return 1


async def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.backup import redis_of
    from hotline.queue.deadletters import dead_letters, put_back

    async with redis_of(settings) as client:
        listed = args.dead_command == "list" or args.all
        found = await dead_letters(client, args.stream) if client and listed else []
        if args.dead_command == "list":
            for d in found:
                fields = "".join(f"\t{k}={v}" for k, v in sorted(d.fields.items()))
                print(f"{d.stream}\t{d.id}\t(was {d.original})\t{d.reason}{fields}")
            if not found:
                print("no dead letters" + (f" in {args.stream}" if args.stream else ""))
            return 0
        stream = args.stream or "intake"
        ids = [d.id for d in found if d.stream == stream] if args.all else args.ids
        if args.all and not ids:
            print(f"no dead letters in {stream}")
            return 0
        failed = 0
        for entry in ids:
            done, said = False, "no such dead letter"
            if client is not None:
                done, said = await put_back(client, stream, entry)
            if done:
                print(f"{entry} -> {stream} {said}", flush=True)
            else:
                failed += 1
                print(f"{said} in {stream}: {entry}", file=sys.stderr, flush=True)
        return 1 if failed else 0


def sms_send(sender: str, text: str, *, to: str | None, url: str | None) -> int:
    from hotline.channels.sms_cli import post_text

    return post_text(sender, text, to=to, url=url)


# glibc's mallopt parameter for the number of allocator arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """What `MALLOC_ARENA_MAX=2` does, set from inside: glibc otherwise gives each thread
    that allocates (aiosqlite's, the reports' sorts and charts) an arena of its own, kept
    after the work is done (16 MB more after a year's report at 300,000 cases;
    BENCHMARKS.md "Memory"). Called before the service starts a thread. False where it does
    not apply: a limit already set in the environment (`MALLOC_ARENA_MAX`, or glibc's
    tunable `glibc.malloc.arena_max` in `GLIBC_TUNABLES`: it wins), or a C library without
    glibc's mallopt."""
    chosen = "MALLOC_ARENA_MAX" in os.environ
    chosen |= "glibc.malloc.arena_max=" in os.environ.get("GLIBC_TUNABLES", "")
    if chosen or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: their allocators differ anyway
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def _already_stopping(sig: signal.Signals) -> None:
    log.warning("%s: already stopping (send SIGKILL to stop at once)", sig.name)


async def _stop_once(app: web.Application) -> None:
    """SIGTERM or Ctrl-C stops `serve` once; a second one while it stops is noted, not acted
    on. run_app's own handler raised its exit again inside the cleanup, cancelling it half
    done: the database, Redis and the worker child were left unclosed, and once the process
    hung at exit on the database's threads. The cleanup is bounded (the worker gets 15 s,
    requests 5 s); SIGKILL still stops it at once."""
    loop = asyncio.get_running_loop()
    stopping = False

    def first(sig: signal.Signals) -> None:
        # Two signals read in one turn of the loop (Ctrl-C's and a wrapper's, or SIGINT and
        # SIGTERM at once) both reach this handler before it is replaced: once is enough.
        nonlocal stopping
        if stopping:
            _already_stopping(sig)
            return
        stopping = True
        for each in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(each, _already_stopping, each)
        raise web.GracefulExit()  # as run_app's own handler does

    for sig in (signal.SIGINT, signal.SIGTERM):  # in place of run_app's, set just before
        loop.add_signal_handler(sig, first, sig)


def _port(text: str) -> int:
    """A TCP port for argparse: 0 to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """The sockets `serve` listens on, bound before anything starts (a port in use, or an
    address this machine does not have, is said at once): one per address `host` names, as
    aiohttp itself would (a name such as localhost may be 127.0.0.1 and ::1); OSError says
    why not."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"{host!r} is not an address to listen on ({exc})") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, (address, *rest) in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # its own address only, as asyncio's servers do
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port, *rest[1:]))
            sock.listen(1024)
            port = sock.getsockname()[1]  # --port 0: the others on the one chosen for the first
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def serve(host: str, port: int, *, demo: bool, worker: bool) -> int:
    from hotline.app import create_app

    limit_malloc_arenas()
    try:
        sockets = listening_sockets(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "is in use (another `hotline serve`?): stop it, or choose another with --port"
        else:
            why = f"cannot be listened on: {exc.strerror or exc}"
        print(f"hotline: port {port} on {host} {why}", file=sys.stderr)
        return 2
    settings = Settings.from_env(demo=demo, run_worker=worker)
    if demo and settings.public_url is None:  # the demo's texts link to where it listens
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a test
        bound = sockets[0].getsockname()[1]  # --port 0: the one the system chose
        where = f"[{local}]" if ":" in local else local
        settings = dataclasses.replace(settings, public_url=f"http://{where}:{bound}")
    app = create_app(settings, worker_process=worker)
    app.on_startup.append(_stop_once)
    log.info("data in %s; config %s", settings.data_dir, settings.config_path)
    web.run_app(app, sock=sockets, shutdown_timeout=5, access_log=None, print=log.info)
    return 0


def worker(health_host: str, health_port: int, *, demo: bool) -> int:
    from hotline.app import create_app

    if not os.environ.get("HOTLINE_REDIS_URL"):  # before the config: --demo needs it too
        raise SettingsError(
            "hotline worker joins a running service: set HOTLINE_REDIS_URL to the Redis"
            " its `hotline serve` uses (`hotline serve` alone runs its own worker)"
        )
    settings = Settings.from_env(demo=demo, run_worker=True)
    limit_malloc_arenas()
    asyncio.run(_run_worker(create_app(settings, pages=False), health_host, health_port))
    return 0


async def _run_worker(app: web.Application, health_host: str, health_port: int) -> None:
    """The app's resources and consumers with only the health checks listening (a liveness
    probe for compose or an orchestrator), until SIGINT/SIGTERM."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    if health_port:
        try:
            await web.TCPSite(runner, health_host, health_port).start()
        except OSError as exc:  # in use, or no such address here: said, and nothing left running
            await runner.cleanup()
            raise SettingsError(
                f"the worker's health checks cannot listen on {health_host} port {health_port}:"
                f" {exc.strerror or exc} (choose another with --health-port, or 0 for none)"
            ) from None
        log.info("worker health checks at http://%s:%d/healthz", health_host, health_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker running; stop with Ctrl-C or SIGTERM")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
