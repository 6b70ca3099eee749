"""The vocabulary: names, order and ranges of the model's inputs."""

from service.features import FEATURE_NAMES, INPUT_FEATURES, TARGET


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
