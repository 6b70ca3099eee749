"""The vocabulary: the 12 model input features and the PM2.5 target, in the paper's order.

Every reader maps its source's names and units into these canonical names; the tensor
builder stacks them in :data:`INPUT_FEATURES` order; the model card records the same order.
Plausible ranges are wide physical envelopes, not climatology: a value outside them means a
broken file (wrong units, corrupted data), not an unusual day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["cmaq", "wrf", "analysis"]


@dataclass(frozen=True)
class Feature:
    """One variable of the service's vocabulary.

    Attributes
    ----------
    name
        Canonical name used in datasets, tensors and the model card.
    source
        The model run it comes from.
    unit
        Canonical unit after conversion.
    low, high
        Plausible range in ``unit``; values outside make the input invalid.
    why
        The physical reasoning behind the range.
    concentration
        Whether the quantity cannot be negative for physical reasons.
    """

    name: str
    source: Source
    unit: str
    low: float
    high: float
    why: str
    long_name: str
    concentration: bool = False


CO = Feature(
    "co",
    "cmaq",
    "ppm",
    0.0,
    50.0,
    "Surface CO is 0.1-3 ppm in Korean cities; 50 ppm is reached only inside fires.",
    "carbon monoxide mixing ratio",
    concentration=True,
)
SO2 = Feature(
    "so2",
    "cmaq",
    "ppm",
    0.0,
    2.0,
    "Hourly SO2 in Korea rarely exceeds 0.1 ppm even beside smelters; 2 ppm is volcanic.",
    "sulphur dioxide mixing ratio",
    concentration=True,
)
O3 = Feature(
    "o3",
    "cmaq",
    "ppm",
    0.0,
    0.5,
    "The highest ozone ever measured in Korea is about 0.3 ppm; 0.5 ppm is not seen outdoors.",
    "ozone mixing ratio",
    concentration=True,
)
NO2 = Feature(
    "no2",
    "cmaq",
    "ppm",
    0.0,
    2.0,
    "Roadside NO2 peaks near 0.2 ppm; 2 ppm would mean ppb read as ppm.",
    "nitrogen dioxide mixing ratio",
    concentration=True,
)
PM10 = Feature(
    "pm10",
    "cmaq",
    "ug/m3",
    0.0,
    5000.0,
    "Asian dust storms have pushed Korean hourly PM10 above 2,000 ug/m3; 5,000 is a hard cap.",
    "PM10 mass concentration",
    concentration=True,
)
PM25 = Feature(
    "pm25",
    "cmaq",
    "ug/m3",
    0.0,
    2000.0,
    "Korean hourly PM2.5 has reached about 500 ug/m3 at worst; 2,000 is a hard cap.",
    "PM2.5 mass concentration",
    concentration=True,
)
TEMPERATURE = Feature(
    "temperature",
    "wrf",
    "degC",
    -60.0,
    60.0,
    "2 m temperature over Korea spans about -30 to 40 C; beyond +-60 C the file is not Kelvin.",
    "2 m air temperature",
)
PRECIPITATION = Feature(
    "precipitation",
    "wrf",
    "mm",
    0.0,
    300.0,
    "The Korean hourly rainfall record is about 145 mm; 300 mm per hour is impossible.",
    "precipitation in the hour ending at the valid time",
)
HUMIDITY = Feature(
    "humidity",
    "wrf",
    "%",
    0.0,
    100.0,
    "Relative humidity with respect to water, clipped to 0-100 as WRF post-processing does.",
    "2 m relative humidity",
)
WIND_DIRECTION = Feature(
    "wind_direction",
    "wrf",
    "degree",
    0.0,
    360.0,
    "Meteorological direction the wind blows from, 0 = north, clockwise.",
    "10 m wind direction (from), earth-relative",
)
WIND_SPEED = Feature(
    "wind_speed",
    "wrf",
    "m/s",
    0.0,
    100.0,
    "Typhoon gusts reach about 60 m/s at 10 m; 100 m/s means wrong units or corruption.",
    "10 m wind speed",
)
PRESSURE = Feature(
    "pressure",
    "wrf",
    "Pa",
    50_000.0,
    110_000.0,
    "Surface pressure: about 80,000 Pa on Hallasan's summit, 105,000 in a strong high; "
    "values near 1,000 mean hPa.",
    "surface pressure",
)

#: The 12 model inputs in the paper's channel order.
INPUT_FEATURES: tuple[Feature, ...] = (
    CO,
    SO2,
    O3,
    NO2,
    PM10,
    PM25,
    TEMPERATURE,
    PRECIPITATION,
    HUMIDITY,
    WIND_DIRECTION,
    WIND_SPEED,
    PRESSURE,
)

#: The target: PM2.5 of the data-assimilation analysis, same unit and range as CMAQ's.
TARGET = Feature(
    "pm25",
    "analysis",
    "ug/m3",
    0.0,
    2000.0,
    PM25.why,
    "PM2.5 mass concentration (data-assimilation analysis)",
    concentration=True,
)

WRF_FEATURES: tuple[Feature, ...] = tuple(f for f in INPUT_FEATURES if f.source == "wrf")
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in INPUT_FEATURES)
