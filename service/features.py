"""The vocabulary: the 12 model input features and the PM2.5 target, in the paper's order.

Every reader maps its source's names and units into these canonical names; the tensor
builder stacks them in :data:`INPUT_FEATURES` order; the model card records the same order.
Plausible ranges are wide physical envelopes, not climatology: a value outside them means a
broken file (wrong units, corrupted data), not an unusual day. Each feature also bounds the
mean of a whole field (every cell of the hours checked): a field can sit inside the envelope
and still be wrong, as ozone in ppm labelled ppb is, once converted, 1,000 times too small
everywhere. Where a common unit mistake would explain implausible values, the feature lists
it (:class:`UnitMixup`), so that the error can say which unit the values look like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Source = Literal["cmaq", "wrf", "analysis"]


@dataclass(frozen=True)
class UnitMixup:
    """A common unit mistake, and how to undo it: ``true = factor * value + offset``.

    Attributes
    ----------
    factor, offset
        The correction that would turn the values read into the feature's canonical unit.
    says
        The mistake in words, e.g. ``"ppm labelled as ppb (1000 times too small)"``.
    """

    factor: float
    offset: float
    says: str


PPM_AS_PPB = UnitMixup(1000.0, 0.0, "ppm labelled as ppb (1000 times too small)")
PPB_AS_PPM = UnitMixup(1e-3, 0.0, "ppb labelled as ppm (1000 times too large)")
MASS_MIXUPS = (
    UnitMixup(1000.0, 0.0, "mg/m3 labelled as ug/m3 (1000 times too small)"),
    UnitMixup(1e9, 0.0, "kg/m3 labelled as ug/m3 (a billion times too small)"),
    UnitMixup(1e-3, 0.0, "ng/m3 labelled as ug/m3 (1000 times too large)"),
)


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
    mean_low, mean_high
        Plausible range of the mean of a whole field (all cells of the hours checked), when
        it is narrower than ``low..high``; ``None`` where no such bound holds (a dry day's
        rain is zero everywhere).
    mixups
        Unit mistakes worth naming when the values are implausible.
    day_mean_low
        Lower bound of the mean of a whole forecast day (24 hours, every cell), checked once
        the day is assembled from its files: stricter than ``mean_low``, which also holds
        for the few hours one of several files may contribute (a clean hour can average far
        less than a clean day).
    typical_mean
        A typical field mean, from which the factor of a unit mistake is estimated: a listed
        mistake is named only if its factor is the nearest power of ten to that estimate.
    """

    name: str
    source: Source
    unit: str
    low: float
    high: float
    why: str
    long_name: str
    concentration: bool = False
    mean_low: float | None = None
    mean_high: float | None = None
    mixups: tuple[UnitMixup, ...] = ()
    day_mean_low: float | None = None
    typical_mean: float | None = None

    def plausible(self, low: float, high: float, mean: float) -> bool:
        """Whether a field with this minimum, maximum and mean is physically possible."""
        return (
            self.low <= low
            and high <= self.high
            and (self.mean_low is None or mean >= self.mean_low)
            and (self.mean_high is None or mean <= self.mean_high)
        )

    def mixup_explaining(self, low: float, high: float, mean: float) -> UnitMixup | None:
        """The listed unit mistake whose correction makes the field plausible, if one does.

        A unit mistake moves the whole field, so one is named only when the field's mean is
        itself implausible; a few wild cells in a sound field are corruption, not units.
        Where the feature has a :attr:`typical_mean`, a listed mistake is named only if its
        factor is the power of ten nearest to ``typical_mean / mean``; otherwise the field is
        said to be about that power of ten off, naming no unit (PM2.5 100 times too large is
        no ng/m3 read as ug/m3, although dividing by 1000 would also make it plausible).

        >>> O3.mixup_explaining(0.00002, 0.00004, 0.00003).says
        'ppm labelled as ppb (1000 times too small)'
        >>> PM25.mixup_explaining(8.0, 1e5, 17.0) is None
        True
        >>> PM25.mixup_explaining(500.0, 30000.0, 2500.0).says
        'about 100 times too large (no common unit mistake is that factor)'
        >>> PM25.mixup_explaining(0.001, 0.1, 0.005).says
        'mg/m3 labelled as ug/m3 (1000 times too small)'
        """
        if self.plausible(mean, mean, mean):
            return None
        nearest = None
        if self.typical_mean is not None and mean > 0:
            nearest = round(math.log10(self.typical_mean / mean))
        for m in self.mixups:
            if nearest is not None and m.offset == 0 and round(math.log10(m.factor)) != nearest:
                continue
            lo, hi = sorted((m.factor * low + m.offset, m.factor * high + m.offset))
            if self.plausible(lo, hi, m.factor * mean + m.offset):
                return m
        if nearest:
            factor = 10.0**nearest
            if self.plausible(factor * low, factor * high, factor * mean):
                size = "small" if nearest > 0 else "large"
                return UnitMixup(
                    factor,
                    0.0,
                    f"about {10 ** abs(nearest):,} times too {size} "
                    "(no common unit mistake is that factor)",
                )
        return None


CO = Feature(
    "co",
    "cmaq",
    "ppm",
    0.0,
    50.0,
    "Surface CO is 0.1-3 ppm in Korean cities; 50 ppm is reached only inside fires. "
    "Background air never holds less than about 0.04 ppm, so a field averaging under 0.02 ppm "
    "is in the wrong unit.",
    "carbon monoxide mixing ratio",
    concentration=True,
    mean_low=0.02,
    mixups=(PPM_AS_PPB, PPB_AS_PPM),
)
SO2 = Feature(
    "so2",
    "cmaq",
    "ppm",
    0.0,
    2.0,
    "Hourly SO2 in Korea rarely exceeds 0.1 ppm even beside smelters; 2 ppm is volcanic. "
    "Fields over Korea and its seas average 0.5-10 ppb; under 0.02 ppb means another unit.",
    "sulphur dioxide mixing ratio",
    concentration=True,
    mean_low=2e-5,
    mixups=(PPM_AS_PPB, PPB_AS_PPM),
)
O3 = Feature(
    "o3",
    "cmaq",
    "ppm",
    0.0,
    0.5,
    "The highest ozone ever measured in Korea is about 0.3 ppm; 0.5 ppm is not seen outdoors. "
    "Background ozone is 20-50 ppb; a field averaging under 1 ppb is in the wrong unit.",
    "ozone mixing ratio",
    concentration=True,
    mean_low=1e-3,
    mixups=(PPM_AS_PPB, PPB_AS_PPM),
)
NO2 = Feature(
    "no2",
    "cmaq",
    "ppm",
    0.0,
    2.0,
    "Roadside NO2 peaks near 0.2 ppm; 2 ppm would mean ppb read as ppm. Fields over Korea "
    "and its seas average a few ppb; under 0.05 ppb means another unit.",
    "nitrogen dioxide mixing ratio",
    concentration=True,
    mean_low=5e-5,
    mixups=(PPM_AS_PPB, PPB_AS_PPM),
)
PM10 = Feature(
    "pm10",
    "cmaq",
    "ug/m3",
    0.0,
    5000.0,
    "Asian dust storms have pushed Korean hourly PM10 above 2,000 ug/m3; 5,000 is a hard cap. "
    "Over Korea and its seas a day averages 5-100 ug/m3 (2-3 on the cleanest days, 1.5 in the "
    "synthetic twin after a summer washout); a day averaging under 0.3 ug/m3 (a few hours "
    "under 0.01) is zero-filled or in another unit, mg/m3 say.",
    "PM10 mass concentration",
    concentration=True,
    mean_low=0.01,
    mixups=MASS_MIXUPS,
    day_mean_low=0.3,
    typical_mean=25.0,
)
PM25 = Feature(
    "pm25",
    "cmaq",
    "ug/m3",
    0.0,
    2000.0,
    "Korean hourly PM2.5 has reached about 500 ug/m3 at worst; 2,000 is a hard cap. "
    "Over Korea and its seas a day averages 3-80 ug/m3 (2-3 on the cleanest days, 0.7 in the "
    "synthetic twin after a summer washout); a day averaging under 0.2 ug/m3 (a few hours "
    "under 0.01) is zero-filled or in another unit, mg/m3 say.",
    "PM2.5 mass concentration",
    concentration=True,
    mean_low=0.01,
    mixups=MASS_MIXUPS,
    day_mean_low=0.2,
    typical_mean=15.0,
)
TEMPERATURE = Feature(
    "temperature",
    "wrf",
    "degC",
    -60.0,
    60.0,
    "2 m temperature over Korea spans about -30 to 40 C; beyond +-60 C the file is not Kelvin.",
    "2 m air temperature",
    mixups=(
        UnitMixup(1.0, 273.15, "degC labelled as K (273.15 too low)"),
        UnitMixup(1.0, -273.15, "K labelled as degC (273.15 too high)"),
        UnitMixup(5 / 9, -160 / 9, "degF labelled as degC"),
    ),
)
PRECIPITATION = Feature(
    "precipitation",
    "wrf",
    "mm",
    0.0,
    300.0,
    "The Korean hourly rainfall record is about 145 mm; 300 mm per hour is impossible, and "
    "so is a whole field averaging 50 mm in an hour.",
    "precipitation in the hour ending at the valid time",
    mean_high=50.0,
    mixups=(
        UnitMixup(1e-3, 0.0, "mm labelled as m (1000 times too large)"),
        UnitMixup(0.1, 0.0, "mm labelled as cm (10 times too large)"),
    ),
)
HUMIDITY = Feature(
    "humidity",
    "wrf",
    "%",
    0.0,
    100.0,
    "Relative humidity with respect to water, clipped to 0-100 as WRF post-processing does. "
    "Over Korea and its seas a field never averages under 2 %.",
    "2 m relative humidity",
    mean_low=2.0,
    mixups=(UnitMixup(100.0, 0.0, "a fraction (0-1) labelled as %"),),
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
    "Typhoon gusts reach about 60 m/s at 10 m; 100 m/s means wrong units or corruption. "
    "Over the seas the wind never calms everywhere: a field averaging under 0.1 m/s is broken.",
    "10 m wind speed",
    mean_low=0.1,
    mixups=(UnitMixup(0.01, 0.0, "cm/s labelled as m/s (100 times too large)"),),
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
    mixups=(
        UnitMixup(100.0, 0.0, "hPa labelled as Pa (100 times too small)"),
        UnitMixup(1000.0, 0.0, "kPa labelled as Pa (1000 times too small)"),
        UnitMixup(0.01, 0.0, "Pa labelled as hPa (100 times too large)"),
    ),
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

#: Not a model input: WRF's 2 m water vapour mixing ratio (Q2), checked before humidity is
#: derived from it, because relative humidity clips and would hide a unit mistake.
MIXING_RATIO = Feature(
    "mixing_ratio",
    "wrf",
    "kg/kg",
    -1e-3,
    0.05,
    "Saturation at 40 C and sea-level pressure is about 0.049 kg/kg; WRF leaves tiny negative "
    "values from numerics. A field averaging under 0.0001 kg/kg (0.1 g/kg) is drier than any "
    "winter over Korea and its seas.",
    "2 m water vapour mixing ratio",
    mean_low=1e-4,
    mixups=(
        UnitMixup(1e-3, 0.0, "g/kg labelled as kg/kg (1000 times too large)"),
        UnitMixup(1e3, 0.0, "kg/kg labelled as g/kg (1000 times too small)"),
    ),
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
    mean_low=PM25.mean_low,
    mixups=PM25.mixups,
    day_mean_low=PM25.day_mean_low,
    typical_mean=PM25.typical_mean,
)

WRF_FEATURES: tuple[Feature, ...] = tuple(f for f in INPUT_FEATURES if f.source == "wrf")
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in INPUT_FEATURES)

#: Korean PM2.5 grades on the daily mean (ug/m3, since 2018-03-27), rounded to a whole ug/m3:
#: upper bounds (inclusive), name, Korean name. The API, the maps and verification use these.
PM25_GRADES: tuple[tuple[float, str, str], ...] = (
    (15, "good", "좋음"),
    (35, "moderate", "보통"),
    (75, "bad", "나쁨"),
    (math.inf, "very_bad", "매우나쁨"),
)
