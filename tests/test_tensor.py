"""Inbox -> (24, 68, 59, 12) tensor, with provenance, through settings and the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from service.cli import main
from service.errors import (
    MissingInputError,
    NotNetCDFError,
    TimeCoverageError,
    UnreadableInputError,
)
from service.features import FEATURE_NAMES
from service.forecast.tensor import assemble_inputs, load_truth, resolve_inputs
from service.settings import GridSpec, Settings
from service.twin.sample import write_sample_day

from .conftest import DAY


def test_tensor_shape_dtype_and_channel_order(settings: Settings) -> None:
    inputs = assemble_inputs(DAY, settings)
    assert inputs.tensor.shape == (24, 68, 59, 12) and inputs.tensor.dtype == np.float32
    t = inputs.tensor
    assert 0.01 < t[..., FEATURE_NAMES.index("o3")].max() < 0.1  # ppm
    assert t[..., FEATURE_NAMES.index("pm10")].min() >= t[..., FEATURE_NAMES.index("pm25")].min()
    assert 90_000 < t[..., FEATURE_NAMES.index("pressure")].mean() < 105_000
    assert t[..., FEATURE_NAMES.index("wind_direction")].min() >= 0
    assert t[..., FEATURE_NAMES.index("wind_direction")].max() <= 360
    np.testing.assert_array_equal(inputs.cmaq_pm25, t[..., 5])
    assert inputs.valid_times[0] == dt.datetime(2024, 1, 8, 15, tzinfo=dt.UTC)


def test_provenance_records_every_file(settings: Settings) -> None:
    inputs = assemble_inputs(DAY, settings)
    kinds = [f.kind for f in inputs.files]
    assert kinds == ["cmaq", "wrf"]
    for f in inputs.files:
        data = Path(f.path).read_bytes()
        assert f.size == len(data) and f.sha256 == hashlib.sha256(data).hexdigest()
        assert f.init_time is not None and f.init_time.tzinfo is not None


def test_truth_comes_from_the_analysis_template(settings: Settings) -> None:
    truth = load_truth(DAY, settings)
    assert truth.data["pm25"].shape == (24, 68, 59)


def test_missing_inbox_files_name_the_template(tmp_path: Path) -> None:
    settings = Settings(inbox=tmp_path)
    with pytest.raises(MissingInputError, match=r"cmaq/20240109/\*.nc: no file matches"):
        assemble_inputs(DAY, settings)


def test_templates_use_the_run_date_and_skip_partial_files(tmp_path: Path) -> None:
    (tmp_path / "20240108").mkdir()
    (tmp_path / "20240108" / "a.nc").write_bytes(b"x")
    (tmp_path / "20240108" / ".b.nc.part").write_bytes(b"x")
    (tmp_path / "20240108" / "c.nc.part").write_bytes(b"x")
    found = resolve_inputs(tmp_path, "{run_date:%Y%m%d}/*", DAY)
    assert [p.name for p in found] == ["a.nc"]


@pytest.mark.parametrize("hops", [1, 2])
def test_a_symbolic_link_loop_is_a_file_error(tmp_path: Path, hops: int) -> None:
    (tmp_path / "20240109").mkdir()
    names = [tmp_path / "20240109" / f"loop{k}.nc" for k in range(hops)]
    for k, link in enumerate(names):
        link.symlink_to(names[(k + 1) % hops].name)
    with pytest.raises(NotNetCDFError, match=r"loop0.nc: is a symbolic link loop"):
        resolve_inputs(tmp_path, "{date:%Y%m%d}/*.nc", DAY)


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make listing ``folder`` fail as ``chmod 000`` does (tests may run as root)."""
    scandir = os.scandir

    def denied(path: str | os.PathLike[str] = ".") -> object:
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)


@pytest.mark.parametrize("which", ["cmaq", "cmaq/20240109"])
def test_an_unreadable_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    (tmp_path / "cmaq" / "20240109").mkdir(parents=True)
    (tmp_path / "cmaq" / "20240109" / "a.nc").write_bytes(b"x")
    _deny(monkeypatch, tmp_path / which)
    with pytest.raises(UnreadableInputError) as info:
        resolve_inputs(tmp_path, "cmaq/{date:%Y%m%d}/*.nc", DAY)
    assert str(info.value) == f"{tmp_path / which}: cannot be read: Permission denied"


def test_a_folder_not_there_yet_is_still_missing(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match="no file matches"):
        resolve_inputs(tmp_path, "cmaq/{date:%Y%m%d}/*.nc", DAY)


def test_a_day_the_inbox_does_not_hold(settings: Settings, tmp_path: Path) -> None:
    for kind in ("cmaq", "wrf"):  # the day's files, delivered under the wrong date
        other = tmp_path / "inbox" / kind / "20240110"
        other.mkdir(parents=True)
        for f in (tmp_path / "inbox" / kind / "20240109").iterdir():
            (other / f.name).write_bytes(f.read_bytes())
    with pytest.raises(TimeCoverageError, match="wrong dates: KST day 2024-01-10"):
        assemble_inputs(dt.date(2024, 1, 10), settings)


def test_cli_inputs_prints_provenance_and_saves_the_tensor(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.settings import get_settings

    monkeypatch.setenv("PM25_INBOX", str(settings.inbox))
    get_settings.cache_clear()
    out = tmp_path / "t.npy"
    result = CliRunner().invoke(main, ["inputs", "--date", "2024-01-09", "--save", str(out)])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["shape"] == [24, 68, 59, 12] and len(report["files"]) == 2
    assert np.load(out).shape == (24, 68, 59, 12)


def test_cli_reports_bad_input_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.settings import get_settings

    write_sample_day(tmp_path, DAY, GridSpec())
    cmaq = next((tmp_path / "cmaq" / "20240109").iterdir())
    cmaq.write_bytes(cmaq.read_bytes()[:1000])
    monkeypatch.setenv("PM25_INBOX", str(tmp_path))
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["inputs", "--date", "2024-01-09"])
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "Error:" in result.output and "truncated" in result.output and cmaq.name in result.output
    assert "Traceback" not in result.output


def test_help_lists_the_products_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for cmd in (
        "demo",
        "twin",
        "run",
        "backfill",
        "scheduler",
        "serve",
        "migrate",
        "train",
        "evaluate",
    ):
        assert f"  {cmd} " in result.output, cmd


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM25_GRID__NCOLS", "61")
    monkeypatch.setenv("PM25_DATABASE_URL", "sqlite:///x.db")
    s = Settings()
    assert s.grid.ncols == 61 and s.database_url.get_secret_value() == "sqlite:///x.db"
    assert s.grid.nrows == 68
