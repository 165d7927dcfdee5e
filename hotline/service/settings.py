"""Process settings from the environment (HOTLINE_*, TWILIO_*), as DESIGN.md lists them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hotline.service.config import demo_config_path


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    config_path: Path
    secret_key: str
    redis_url: str | None = None  # None: start the embedded redis-server under data_dir
    public_url: str | None = None
    demo: bool = False
    run_worker: bool = True  # route intake in this process (serve without --no-worker)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "hotline.sqlite3"

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
        cls, env: Mapping[str, str] | None = None, *, demo: bool = False, run_worker: bool = True
    ) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("HOTLINE_DATA_DIR") or "./var").resolve()
        config = env.get("HOTLINE_CONFIG")
        if config:
            config_path = Path(config)
        elif demo:
            config_path = demo_config_path()
        else:
            raise SettingsError(
                "no point config: set HOTLINE_CONFIG to a TOML file, or run with --demo"
            )
        public_url = (env.get("HOTLINE_PUBLIC_URL") or "").rstrip("/") or None
        if public_url and not public_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"HOTLINE_PUBLIC_URL must start with http:// or https://: {public_url}"
            )
        return cls(
            data_dir=data_dir,
            config_path=config_path,
            secret_key=env.get("HOTLINE_SECRET_KEY") or _stored_secret(data_dir),
            redis_url=env.get("HOTLINE_REDIS_URL") or None,
            public_url=public_url,
            demo=demo,
            run_worker=run_worker,
        )


def _stored_secret(data_dir: Path) -> str:
    """The secret key kept in the data dir, made on first use (readable by the owner only)."""
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
