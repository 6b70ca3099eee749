"""The vocabulary: names, order and ranges of the model's inputs."""

import pytest

from service.features import FEATURE_NAMES, INPUT_FEATURES, O3, PM10, PM25, TARGET


def test_twelve_inputs_in_the_papers_order() -> None:
    assert FEATURE_NAMES == (
        "co",
        "so2",
        "o3",
        "no2",
        "pm10",
        "pm25",
        "temperature",
        "precipitation",
        "humidity",
        "wind_direction",
        "wind_speed",
        "pressure",
    )


def test_units_are_the_papers() -> None:
    units = [f.unit for f in INPUT_FEATURES]
    assert units == ["ppm"] * 4 + ["ug/m3"] * 2 + ["degC", "mm", "%", "degree", "m/s", "Pa"]


def test_ranges_are_ordered_and_explained() -> None:
    for f in (*INPUT_FEATURES, TARGET):
        assert f.low < f.high, f.name
        assert len(f.why) > 20, f.name
    assert all(f.concentration for f in INPUT_FEATURES[:6])
    assert TARGET.name == "pm25" and TARGET.source == "analysis"


@pytest.mark.parametrize(
    ("feature", "cleanest_twin_day"), [(PM25, 0.69), (PM10, 1.52), (TARGET, 0.69)]
)
def test_a_day_of_pm_in_mg_or_a_hundredth_is_implausible(feature, cleanest_twin_day) -> None:  # type: ignore[no-untyped-def]
    """The twin's cleanest day (of 2021 and 2023) passes with room to spare; a typical day in
    mg/m3, or 100 times too small, falls below the bound."""
    assert feature.day_mean_low is not None and feature.typical_mean is not None
    assert feature.day_mean_low <= cleanest_twin_day / 2
    assert feature.typical_mean / 100 < feature.day_mean_low


def test_a_unit_mistake_is_named_only_when_its_factor_explains_the_values() -> None:
    mg = PM25.mixup_explaining(0.001, 0.1, 0.005)
    assert mg is not None and mg.says.startswith("mg/m3 labelled as ug/m3")
    ng = PM25.mixup_explaining(5.0, 80_000.0, 15_000.0)
    assert ng is not None and ng.says.startswith("ng/m3 labelled as ug/m3")
    hundred = PM25.mixup_explaining(500.0, 30_000.0, 2500.0)  # 100 times too large
    assert hundred is not None and hundred.factor == 0.01
    assert hundred.says.startswith("about 100 times too large") and "ng/m3" not in hundred.says
    small = PM10.mixup_explaining(0.001, 0.9, 0.008)  # about 1000 times too small: mg
    assert small is not None and small.says.startswith("mg/m3")
    ppm = O3.mixup_explaining(0.00002, 0.00004, 0.00003)  # no typical mean: as before
    assert ppm is not None and ppm.says == "ppm labelled as ppb (1000 times too small)"
