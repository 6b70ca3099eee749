"""Docker cannot run here: check the deployment files statically against the CLI and settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.cli import main
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml")


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_every_command_the_containers_run_exists_in_the_cli() -> None:
    services = _compose()["services"]
    commands = [s["command"] for s in services.values() if "command" in s]
    assert {c[1] for c in commands} == {"migrate", "serve", "scheduler"}
    for cmd in commands:
        assert cmd[0] == "pm25" and cmd[1] in main.commands, cmd
        options = {p.opts[0] for p in main.commands[cmd[1]].params if p.opts}
        for arg in cmd[2:]:
            if arg.startswith("--"):
                assert arg in options, (cmd, arg)
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    cmd = re.search(r'^CMD \["pm25", "(\w+)"', dockerfile, re.M)
    assert cmd and cmd.group(1) in main.commands


def test_every_environment_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    env_vars = set()
    for service in _compose()["services"].values():
        env_vars |= {k for k in service.get("environment", {}) if k.startswith("PM25_")}
    env_vars |= set(re.findall(r"(PM25_[A-Z_]+)=", (ROOT / "docker" / "Dockerfile").read_text()))
    assert env_vars
    for var in env_vars:
        assert var.removeprefix("PM25_").lower() in fields, var


def test_the_image_runs_as_a_user_and_ships_the_model() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "USER pm25" in dockerfile and "FROM python:3.11-slim" in dockerfile
    assert "COPY models ./models" in dockerfile and "HEALTHCHECK" in dockerfile
    services = _compose()["services"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["db"]["image"].startswith("postgres:")
    assert "healthcheck" in services["db"] and "healthcheck" in services["api"]
