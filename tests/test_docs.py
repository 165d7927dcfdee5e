"""The README documents every setting and command, and the layout matches DESIGN.md."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from hotline.cli import _parser

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def env_vars_read() -> set[str]:
    source = "\n".join(p.read_text("utf-8") for p in (ROOT / "hotline").rglob("*.py"))
    return set(re.findall(r'env\.get\("((?:HOTLINE|TWILIO)_[A-Z_]+)"', source))


def test_every_environment_variable_is_documented() -> None:
    names = env_vars_read()
    assert "HOTLINE_DATA_DIR" in names
    for name in names:
        assert f"`{name}`" in README, f"README does not document {name}"


def test_every_command_is_documented() -> None:
    parser = _parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name in commands.choices:  # type: ignore[union-attr]
        assert f"`hotline {name}" in README, f"README does not document `hotline {name}`"


def test_quick_start_is_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    venv = "python3 -m venv .venv && . .venv/bin/activate && "
    test = venv + "pip install -e '.[dev]' && npm ci && scripts/check"
    assert [b.strip() for b in blocks] == [venv + "pip install . && hotline serve --demo", test]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci


@pytest.mark.parametrize("name", ["queue", "channels", "web", "service"])
def test_no_top_level_package_shadows_another(name: str) -> None:
    assert not (ROOT / name).exists()
    assert (ROOT / "hotline" / name / "__init__.py").is_file()
    assert (ROOT / "tests" / name).is_dir()


def test_distribution_and_command_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "liaison-hotline"
    assert project["scripts"] == {"hotline": "hotline.cli:main"}
    assert project["requires-python"] == ">=3.11"


def test_compose_redis_keeps_an_append_only_file() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert '"--appendonly", "yes"' in compose


def test_every_data_file_is_packaged() -> None:
    """`pip install .` (not editable) ships every template, catalog, migration and asset."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["hotline"]
    package = ROOT / "hotline"
    for path in package.rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(package)
        assert any(
            relative.match(p) and len(relative.parts) == len(Path(p).parts) for p in patterns
        ), f"{relative} is not in [tool.setuptools.package-data]"
