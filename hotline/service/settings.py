"""Process settings from the environment (HOTLINE_*, TWILIO_*), as DESIGN.md lists them."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hotline.service.accounts import DEFAULT_PROFILE, PROFILES
from hotline.service.config import demo_config_path

# Used to sign and check SMS webhooks in --demo when TWILIO_AUTH_TOKEN is unset, so that
# `hotline sms send` works out of the box. Not a secret: never use it for a real number.
DEMO_TWILIO_AUTH_TOKEN = "demo-twilio-auth-token"  # noqa: S105 - documented, demo only
# With --demo, members without a password get this one, so the console can be tried at once.
DEMO_PASSWORD = "jiachuang-demo"  # noqa: S105 - documented, demo only


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Twilio:
    account_sid: str | None = None
    auth_token: str | None = None
    sender: str | None = None  # TWILIO_FROM: a number, or a Messaging Service SID (MG...)
    api_base: str | None = None  # TWILIO_API_BASE: REST base URL override

    @property
    def can_send(self) -> bool:
        return bool(self.account_sid and self.auth_token and self.sender)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    config_path: Path
    secret_key: str
    redis_url: str | None = None  # None: start the embedded redis-server under data_dir
    public_url: str | None = None
    demo: bool = False
    run_worker: bool = True  # route intake in this process (serve without --no-worker)
    twilio: Twilio = Twilio()
    argon2_profile: str = DEFAULT_PROFILE  # HOTLINE_ARGON2_PROFILE: cost of password hashing
    # HOTLINE_TRUSTED_PROXIES: addresses or networks whose X-Forwarded-For is believed.
    trusted_proxies: tuple[str, ...] = ()
    # HOTLINE_DATABASE_URL: None for SQLite in the data dir; postgresql://... for production.
    database_url: str | None = None
    metrics_token: str | None = None  # HOTLINE_METRICS_TOKEN: bearer token /metrics asks for
    api_rate: int = 120  # HOTLINE_API_RATE: requests a minute per API token
    # HOTLINE_SECRET_KEY_PREVIOUS: keys being rotated out, still read (never written with).
    previous_secret_keys: tuple[str, ...] = ()

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The secret key, then the previous ones: what may have signed or sealed a value."""
        return (self.secret_key, *self.previous_secret_keys)

    @property
    def webhook_token(self) -> str | None:
        """The token SMS webhooks are signed with; None means the webhook refuses everything."""
        if self.twilio.auth_token:
            return self.twilio.auth_token
        return DEMO_TWILIO_AUTH_TOKEN if self.demo else None

    @property
    def database_path(self) -> Path:
        """The SQLite file, when the database is the embedded default."""
        return self.data_dir / "hotline.sqlite3"

    @property
    def database(self) -> str:
        """The database URL the store opens."""
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def database_is_sqlite(self) -> bool:
        return self.database_url is None

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def secure_cookies(self) -> bool:
        return bool(self.public_url and self.public_url.startswith("https://"))

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        demo: bool = False,
        run_worker: bool = True,
        make_secret: bool = True,
    ) -> Settings:
        """Settings from the environment. Without `make_secret` (a restore, which needs the
        data dir empty) no secret key is generated into the data dir."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("HOTLINE_DATA_DIR") or "./var").resolve()
        if data_dir.exists() and not data_dir.is_dir():
            raise SettingsError(f"HOTLINE_DATA_DIR must be a folder: {data_dir} is a file")
        config = env.get("HOTLINE_CONFIG")
        if config:
            config_path = Path(config)
        elif demo:
            config_path = demo_config_path()
        else:
            raise SettingsError(
                "no point config: set HOTLINE_CONFIG to a TOML file, or run with --demo"
            )
        argon2_profile = (env.get("HOTLINE_ARGON2_PROFILE") or DEFAULT_PROFILE).upper()
        if argon2_profile not in PROFILES:
            raise SettingsError(
                f"HOTLINE_ARGON2_PROFILE must be one of {', '.join(PROFILES)}: {argon2_profile}"
            )
        proxies = tuple((env.get("HOTLINE_TRUSTED_PROXIES") or "").replace(",", " ").split())
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(
                    f"HOTLINE_TRUSTED_PROXIES: {proxy!r} is not an address or network"
                ) from None
        database_url = env.get("HOTLINE_DATABASE_URL") or None
        if database_url and not database_url.startswith(
            ("postgresql://", "postgres://", "postgresql+asyncpg://")
        ):
            scheme = database_url.split(":", 1)[0]
            raise SettingsError(
                f"HOTLINE_DATABASE_URL must be postgresql://... (or unset for SQLite in the data"
                f" dir, HOTLINE_DATA_DIR), not {scheme}:..."
            )
        redis_url = env.get("HOTLINE_REDIS_URL") or None
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                "HOTLINE_REDIS_URL must be redis://, rediss:// or unix://... (or unset for the"
                f" embedded Redis in the data dir), not {redis_url.split(':', 1)[0]}:..."
            )
        try:  # what redis-py would fail on at first use (never echoing its password)
            _ = urlsplit(redis_url or "").port
        except ValueError as exc:
            raise SettingsError(f"HOTLINE_REDIS_URL is not a valid address: {exc}") from None
        api_rate = env.get("HOTLINE_API_RATE") or "120"
        if not (api_rate.isascii() and api_rate.isdigit() and 1 <= int(api_rate[:8]) <= 10**6):
            raise SettingsError(
                f"HOTLINE_API_RATE must be a whole number from 1 to 1000000: {api_rate}"
            )
        public_url = (env.get("HOTLINE_PUBLIC_URL") or "").rstrip("/") or None
        if public_url and not public_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"HOTLINE_PUBLIC_URL must start with http:// or https://: {public_url}"
            )
        secret_key = env.get("HOTLINE_SECRET_KEY") or (
            _stored_secret(data_dir) if make_secret else ""
        )
        return cls(
            data_dir=data_dir,
            config_path=config_path,
            secret_key=secret_key,
            previous_secret_keys=_previous_keys(env.get("HOTLINE_SECRET_KEY_PREVIOUS"), secret_key),
            redis_url=redis_url,
            public_url=public_url,
            demo=demo,
            run_worker=run_worker,
            argon2_profile=argon2_profile,
            trusted_proxies=proxies,
            database_url=database_url,
            metrics_token=env.get("HOTLINE_METRICS_TOKEN") or None,
            api_rate=int(api_rate),
            twilio=Twilio(
                account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
                auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
                sender=env.get("TWILIO_FROM") or None,
                api_base=(env.get("TWILIO_API_BASE") or "").rstrip("/") or None,
            ),
        )


def _previous_keys(listed: str | None, current: str) -> tuple[str, ...]:
    """HOTLINE_SECRET_KEY_PREVIOUS: earlier keys, comma-separated, newest first."""
    keys = []
    for key in (listed or "").split(","):
        key = key.strip()
        if key and key != current and key not in keys:
            keys.append(key)
    return tuple(keys)


def make_data_dir(data_dir: Path) -> None:
    """The data dir, made readable by its owner only when it is made (it holds every
    request's text and phone number: the database, Redis's files, the spool)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def _stored_secret(data_dir: Path) -> str:
    """The secret key kept in the data dir, made on first use (readable by the owner only)."""
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    make_data_dir(data_dir)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
