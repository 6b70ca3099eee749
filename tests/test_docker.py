"""Docker cannot run here: check the deployment files statically against the CLI and settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service.cli import main
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
yaml = pytest.importorskip("yaml")

HEARTBEAT_SECONDS = 30  # service/scheduler.py: the heartbeat job's interval


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _stages() -> dict[str, str]:
    """The Dockerfile's build stages by name, each with its instructions."""
    parts = re.split(r"^FROM \S+ AS (\w+)\s*$", DOCKERFILE.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _exec_form(stage: str, instruction: str) -> list[list[str]]:
    """The JSON (exec-form) arguments of a stage's ``CMD`` or ``HEALTHCHECK ... CMD`` lines."""
    text = stage.replace("\\\n", " ")
    prefix = "" if instruction == "CMD" else rf"{instruction} .*?"
    return [json.loads(a) for a in re.findall(rf"^{prefix}CMD (\[.*\])\s*$", text, re.M)]


def _check_pm25_command(cmd: list[str]) -> None:
    assert cmd[0] == "pm25" and cmd[1] in main.commands, cmd
    command = main.commands[cmd[1]]
    options = {o for p in command.params for o in p.opts if o.startswith("--")}
    for arg in cmd[2:]:
        if arg.startswith("--"):
            assert arg in options, (cmd, arg)
    # ...and the whole line parses, arguments and choices included.
    ctx = command.make_context(cmd[1], cmd[2:], resilient_parsing=False)
    assert ctx.params is not None


def test_every_command_the_containers_run_exists_in_the_cli() -> None:
    services = _compose()["services"]
    commands = [s["command"] for s in services.values() if "command" in s]
    assert {c[1] for c in commands} == {"migrate", "serve", "scheduler"}
    checks = [
        s["healthcheck"]["test"][1:]
        for s in services.values()
        if s.get("healthcheck", {}).get("test", [""])[0] == "CMD"
    ]
    for cmd in commands + [c for c in checks if c[0] == "pm25"]:
        _check_pm25_command(cmd)
    stages = _stages()
    assert [c[:2] for c in _exec_form(stages["api"], "CMD")] == [["pm25", "serve"]]
    assert [c[:2] for c in _exec_form(stages["scheduler"], "CMD")] == [["pm25", "scheduler"]]
    for stage in stages.values():
        for cmd in _exec_form(stage, "CMD") + _exec_form(stage, "HEALTHCHECK"):
            _check_pm25_command(cmd)


def test_every_environment_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    env_vars = set()
    for service in _compose()["services"].values():
        env_vars |= {k for k in service.get("environment", {}) if k.startswith("PM25_")}
    env_vars |= set(re.findall(r"(PM25_[A-Z_]+)=", DOCKERFILE.read_text()))
    assert env_vars
    for var in env_vars:
        assert var.removeprefix("PM25_").lower() in fields, var


def test_the_images_run_as_a_user_and_ship_the_model() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert "FROM python:3.11-slim AS base" in dockerfile
    assert "COPY models ./models" in _stages()["base"]
    for name in ("api", "scheduler"):
        stage = _stages()[name]
        assert "USER pm25" in stage and "HEALTHCHECK" in stage, name
    services = _compose()["services"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["db"]["image"].startswith("postgres:")
    assert all("healthcheck" in services[s] for s in ("db", "api", "scheduler"))


def test_the_api_image_is_built_without_tensorflow() -> None:
    """The API never imports TensorFlow: its image (and the migration's) does not carry it."""
    stages = _stages()
    assert list(stages) == ["base", "scheduler", "api"]  # the default target is the last: api
    assert re.search(r"^RUN pip install -e \. ", stages["base"], re.M)
    assert "[ml]" not in stages["base"] + stages["api"]
    assert "find_spec('tensorflow') is not None" in stages["api"]  # the build checks it
    assert re.search(r"^RUN pip install -e '\.\[ml\]'", stages["scheduler"], re.M)
    services = _compose()["services"]
    targets = {name: s["build"]["target"] for name, s in services.items() if "build" in s}
    assert targets == {"migrate": "api", "api": "api", "scheduler": "scheduler"}
    assert (
        services["api"]["image"] == services["migrate"]["image"] != services["scheduler"]["image"]
    )


def test_the_scheduler_health_check_reads_its_heartbeat() -> None:
    """Slim images have no procps (no pgrep): the check asks the database for the heartbeat."""
    check = _compose()["services"]["scheduler"]["healthcheck"]
    assert check["test"][:4] == ["CMD", "pm25", "health", "scheduler"]
    max_age = int(check["test"][check["test"].index("--max-age") + 1])
    assert max_age >= 2 * HEARTBEAT_SECONDS  # one late beat is no alarm
    assert _exec_form(_stages()["scheduler"], "HEALTHCHECK") == [check["test"][1:]]
    for path in (DOCKERFILE, ROOT / "docker" / "compose.yaml"):
        assert "pgrep" not in path.read_text(), path
