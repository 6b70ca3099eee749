"""The twin's synthetic world: weather, emissions, transport and chemistry of PM2.5 over Korea.

A deliberately simple but physically ordered model, run hour by hour on the WRF domain (wider
than the service grid, so pollution enters from outside):

* **Weather** is an analytic function of time and place: a seasonal monsoon flow (north-west
  in winter, south-west in summer), travelling synoptic waves moving west to east (their
  geostrophic pressure gives highs and lows; lows bring rain), a diurnal cycle, and a sea
  breeze over the real coastline (land from the ``global-land-mask`` package).
* **Emissions** follow where people live (AirKorea station density as a proxy) plus the
  industrial complexes of Pohang, Ulsan, Yeosu/Gwangyang and the Dangjin, Taean and Boryeong
  power plants, with daily, weekly and heating-season cycles.
* **Transport** is semi-Lagrangian advection by the wind plus a little diffusion; inflow at
  the boundary carries a background (mostly from the west and north-west) plus episodic
  transboundary pollution and spring dust. Each year draws its own episodes: how many, when
  (most in winter and spring), how strong, how long and along which track (the side of the
  domain the plume enters from); no date is fixed.
* **Boundary layer**: emissions mix into a layer that deepens by day and in summer; morning
  growth entrains cleaner air from aloft.
* **Chemistry**: secondary PM2.5 forms from precursors, faster when humid; rain washes
  particles out; dry deposition removes them slowly.

The same code runs the "truth" and, with :class:`Errors`, the "CMAQ forecast": perturbed
emissions, winds, timing and inflow, and systematic biases. Everything is deterministic for a
seed. All of it is SYNTHETIC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter, map_coordinates

from service.settings import GridSpec
from service.stations import load_stations
from service.timeaxis import KST
from service.twin.domains import WrfDomain, wrf_domain

F = npt.NDArray[np.float64]
UTC = dt.UTC
EPOCH = dt.datetime(2000, 1, 1, tzinfo=UTC)
#: Tracers carried by the transport: primary PM2.5, secondary PM2.5, coarse PM (PM10 - PM2.5),
#: a combustion tracer (drives CO and NO2) and SO2.
TRACERS = ("primary", "secondary", "coarse", "combustion", "so2")

#: Industrial complexes and power plants: (name, lat, lon, PM2.5 weight, SO2 weight).
POINT_SOURCES = (
    ("Pohang steelworks", 35.99, 129.40, 1.0, 1.0),
    ("Ulsan industrial complex", 35.50, 129.36, 0.9, 1.2),
    ("Yeosu/Gwangyang", 34.85, 127.72, 1.1, 1.4),
    ("Dangjin power plant", 37.05, 126.51, 0.7, 1.5),
    ("Taean power plant", 36.90, 126.23, 0.6, 1.3),
    ("Boryeong power plant", 36.40, 126.49, 0.6, 1.3),
)


def hours_since_epoch(when: dt.datetime) -> float:
    """Hours from 2000-01-01 00 UTC."""
    return (when - EPOCH).total_seconds() / 3600.0


def winter_index(when: dt.datetime) -> float:
    """1 in mid-January, 0 in mid-July: the seasonal phase of the East Asian monsoon."""
    doy = when.timetuple().tm_yday
    return 0.5 * (1.0 + np.cos(2 * np.pi * (doy - 15) / 365.25))


def pollution_season(when: dt.datetime) -> float:
    """1 in mid-February, 0 in mid-August: when transboundary inflow is strongest."""
    doy = when.timetuple().tm_yday
    return 0.5 * (1.0 + np.cos(2 * np.pi * (doy - 45) / 365.25))


#: Ordinary haze episodes per year, their median strength at the inflow
#: (ug/m3), the log-standard deviation of that strength and its cap, and the weight of the
#: quietest season against the peak in late February.
EPISODES_PER_YEAR, EPISODE_MEDIAN, EPISODE_LOG_SD, EPISODE_MAX, EPISODE_FLOOR = (
    18,
    52.0,
    0.45,
    150.0,
    0.1,
)
#: Each year also has one major episode, in the cold season (its day of year drawn between
#: these, counted from 1 January; a negative one falls in December, see
#: :data:`MAJOR_EPISODE_OWN_YEAR`), of this strength.
MAJOR_EPISODE_DAYS, MAJOR_EPISODE_STRENGTH = (-30, 80), (135.0, 170.0)
#: Whether a negative draw goes to the December of the same year rather than the one before, so
#: that every calendar year holds exactly one major episode (otherwise a year can hold none and
#: the next two).
MAJOR_EPISODE_OWN_YEAR = False


@dataclass(frozen=True)
class Episode:
    """A transboundary (or dust) episode: inflow that rises and falls over ``hours``."""

    start: float  # hours since epoch
    hours: float
    amplitude: float  # ug/m3 added to the inflow at its peak
    dust: bool = False
    bearing_deg: float = 290.0  # where the plume comes from (270: west, 315: north-west)

    def strength(self, t: float) -> float:
        x = (t - self.start) / self.hours
        return float(self.amplitude * np.sin(np.pi * x) ** 2) if 0.0 <= x <= 1.0 else 0.0


@dataclass(frozen=True)
class Errors:
    """How a forecast run departs from the truth; the defaults are the truth itself.

    The "learnable" fields are systematic and visible in the forecast's own inputs; the rest
    change from day to day at random.
    """

    # random, day to day (not learnable from the inputs)
    time_shift_h: float = 0.0  # the weather arrives early or late
    shift_km: tuple[float, float] = (0.0, 0.0)  # synoptic systems displaced
    wind_scale: float = 1.0
    emission_scale: float = 1.0
    emission_field: F | None = None  # smooth multiplicative error map of emissions (00 KST)
    emission_field_late: F | None = None  # the map it drifts to by 23 KST
    secondary_field: F | None = None  # smooth regional error map of secondary formation
    secondary_field_late: F | None = None
    background_field: F | None = None  # smooth regional error map of the clean-air background
    inflow_scale: float = 1.0
    inflow_shift_h: float = 0.0
    inflow_bearing_deg: float = 0.0  # the plumes' tracks turned
    rain_scale: float = 1.0
    # systematic (learnable)
    city_emission_bias: float = 1.0  # over-estimated urban emissions
    industry_emission_bias: float = 1.0  # under-estimated industrial emissions
    humid_secondary_bias: float = 1.0  # too much secondary formation in humid air
    washout_bias: float = 1.0  # too little wet removal
    pbl_bias: float = 1.0  # too shallow a night-time boundary layer
    inflow_bias: float = 1.0  # transboundary episodes too strong (the global model's boundaries)


TRUTH = Errors()


@dataclass
class Weather:
    """Surface weather at one hour on the world grid (earth-relative wind)."""

    u: F
    v: F
    temperature: F
    humidity: F
    pressure: F
    rain: F  # mm in the hour
    pbl: F  # boundary-layer depth, m


@dataclass
class State:
    """Tracer concentrations (ug/m3-like units) on the world grid, and the last PBL depth."""

    tracers: F  # (len(TRACERS), ny, nx)
    pbl: F
    time: dt.datetime


class World:
    """The synthetic world for one seed on the WRF domain around a service grid.

    Parameters
    ----------
    service
        The service grid; the world covers its WRF domain.
    seed
        Fixes the synoptic waves, the episodes and every random perturbation.
    """

    def __init__(self, service: GridSpec, seed: int = 0) -> None:
        self.seed = seed
        self.domain: WrfDomain = wrf_domain(service)
        spec = self.domain.spec
        self.ny, self.nx = spec.nrows, spec.ncols
        self.cell_km = spec.cell_m / 1000.0
        self.lat, self.lon = self.domain.lat_lon()
        jj, ii = np.mgrid[0 : self.ny, 0 : self.nx]
        self.x_km = ii * self.cell_km
        self.y_km = jj * self.cell_km
        self.ii, self.jj = ii.astype(float), jj.astype(float)
        rng = np.random.default_rng([seed, 7])
        n = 4
        self._wave_l = rng.uniform(2200.0, 4200.0, n)  # wavelength along x, km
        self._wave_ly = rng.choice([-1, 1], n) * rng.uniform(2500.0, 6000.0, n)
        self._wave_a = rng.uniform(1.8, 3.2, n)  # m/s
        self._wave_phase = rng.uniform(0, 2 * np.pi, n)
        self._wave_mod = rng.uniform(0, 2 * np.pi, n)
        self._meso_k = rng.uniform(2 * np.pi / 300.0, 2 * np.pi / 90.0, (6, 2)) * rng.choice(
            [-1, 1], (6, 2)
        )
        self._meso_phase = rng.uniform(0, 2 * np.pi, 6)
        self._episodes: dict[int, tuple[Episode, ...]] = {}

    # -- static maps -------------------------------------------------------------------------

    @cached_property
    def land(self) -> F:
        """Land fraction, smoothed over ~15 km (real coastline)."""
        from global_land_mask import globe

        mask = globe.is_land(self.lat, self.lon).astype(float)
        return np.clip(gaussian_filter(mask, 1.2), 0.0, 1.0)

    @cached_property
    def sea_breeze_dir(self) -> tuple[F, F]:
        """Unit-ish vectors pointing from sea to land, strongest at the coast."""
        smooth = gaussian_filter(self.land, 2.5)
        gy, gx = np.gradient(smooth)
        mag = np.hypot(gx, gy).max() or 1.0
        return gx / mag, gy / mag

    @cached_property
    def population(self) -> F:
        """Where people live: station density smoothed over ~10 km, Seoul's peak near 1."""
        grid = self.domain.grid
        dens = np.zeros((self.ny, self.nx))
        for s in load_stations():
            cell = grid.cell_of(s.lat, s.lon)
            if cell is not None:
                dens[cell] += 1.0
        pop = gaussian_filter(dens, 1.3) + 0.25 * gaussian_filter(dens, 4.0)
        return pop / np.quantile(pop, 0.999)

    @cached_property
    def point_sources(self) -> tuple[F, F]:
        """PM2.5 and SO2 weights of the industrial complexes and power plants."""
        grid = self.domain.grid
        pm = np.zeros((self.ny, self.nx))
        so2 = np.zeros((self.ny, self.nx))
        for _, lat, lon, w_pm, w_so2 in POINT_SOURCES:
            cell = grid.cell_of(lat, lon)
            if cell is not None:
                pm[cell] += w_pm
                so2[cell] += w_so2
        return gaussian_filter(pm, 0.8) * 8.0, gaussian_filter(so2, 0.8) * 8.0

    @cached_property
    def _ring_directions(self) -> tuple[F, F]:
        """Unit vectors from the domain's centre to each padded cell (x east, y north)."""
        pad = self.PAD
        jj, ii = np.mgrid[-pad : self.ny + pad, -pad : self.nx + pad]
        dx = (ii - self.nx / 2) / (self.nx / 2)
        dy = (jj - self.ny / 2) / (self.ny / 2)
        norm = np.maximum(np.hypot(dx, dy), 1e-6)
        return dx / norm, dy / norm

    @cached_property
    def inflow_side(self) -> F:
        """Weight of the background inflow at each padded boundary cell: west and north-west."""
        dx, dy = self._ring_directions
        return (
            1.0 * np.clip(-dx, 0, 1)
            + 0.6 * np.clip(dy, 0, 1)
            + 0.25 * np.clip(-dy, 0, 1)
            + 0.1 * np.clip(dx, 0, 1)
        )

    def track_side(self, bearing_deg: float) -> F:
        """Weight of an episode's inflow at each padded cell: most on the side it comes from."""
        dx, dy = self._ring_directions
        b = np.deg2rad(bearing_deg)
        towards = dx * np.sin(b) + dy * np.cos(b)  # 1 on the side the plume comes from
        return np.clip((towards - 0.25) / 0.75, 0.0, 1.0) ** 1.5 * 1.6

    PAD = 10

    # -- episodes ----------------------------------------------------------------------------

    def episodes(self, year: int) -> tuple[Episode, ...]:
        """The transboundary and dust episodes of a year (the same for every run of a seed).

        Drawn once per year and kept: ``inflow`` asks for them several times every hour.
        """
        if year not in self._episodes:
            self._episodes[year] = tuple(self._draw_episodes(year))
        return self._episodes[year]

    def _draw_episodes(self, year: int) -> list[Episode]:
        """Draw a year's episodes: their number, dates, strengths, durations and tracks.

        Transboundary haze comes mostly in winter and spring (the seasonal weight peaks in late
        February), from the west and north-west; dust comes in spring from the north-west.
        Nothing is fixed: two years of one seed share only the climatology.
        """
        rng = np.random.default_rng([self.seed, year, 11])
        start_of_year = hours_since_epoch(dt.datetime(year, 1, 1, tzinfo=UTC))
        days = np.arange(365)
        weight = EPISODE_FLOOR + 0.5 * (1 + np.cos(2 * np.pi * (days - 55) / 365.25))
        weight /= weight.sum()
        out = []
        for d in rng.choice(days, size=EPISODES_PER_YEAR, p=weight):
            amplitude = min(EPISODE_MEDIAN * float(rng.lognormal(0.0, EPISODE_LOG_SD)), EPISODE_MAX)
            out.append(
                Episode(
                    start_of_year + d * 24.0 + rng.uniform(0, 24),
                    rng.uniform(30, 90),
                    amplitude,
                    bearing_deg=float(rng.normal(285.0, 25.0)),
                )
            )
        major_day = rng.uniform(*MAJOR_EPISODE_DAYS)
        if MAJOR_EPISODE_OWN_YEAR and major_day < 0:
            major_day += 365.0  # this year's December, not the one before
        out.append(
            Episode(
                start_of_year + major_day * 24.0,
                rng.uniform(36, 60),
                rng.uniform(*MAJOR_EPISODE_STRENGTH),
                bearing_deg=float(rng.normal(290.0, 15.0)),
            )
        )
        for d in rng.choice(np.arange(50, 150), size=rng.poisson(2.5)):  # spring dust
            out.append(
                Episode(
                    start_of_year + d * 24.0 + rng.uniform(0, 24),
                    rng.uniform(24, 60),
                    float(rng.lognormal(np.log(170.0), 0.45)),
                    dust=True,
                    bearing_deg=float(rng.normal(305.0, 20.0)),
                )
            )
        return out

    def inflow(self, when: dt.datetime, errors: Errors = TRUTH) -> tuple[float, float, float]:
        """Transboundary PM2.5, dust, and the 0..1 episode wind factor at a time."""
        pm, dust, base, _ = self._inflow_parts(when, errors)
        pm_total = sum(s for s, _ in pm)
        dust_total = sum(s for s, _ in dust)
        factor = min(1.0, pm_total / 60.0)
        return (base + pm_total) * errors.inflow_scale, dust_total * errors.inflow_scale, factor

    def _inflow_parts(
        self, when: dt.datetime, errors: Errors
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], float, float]:
        """Active episodes as (strength, bearing) for haze and dust, the background, the time."""
        t = hours_since_epoch(when) - errors.inflow_shift_h
        pm: list[tuple[float, float]] = []
        dust: list[tuple[float, float]] = []
        for year in (when.year - 1, when.year, when.year + 1):
            for ep in self.episodes(year):
                s = ep.strength(t) * errors.inflow_bias
                if s > 0.0:
                    (dust if ep.dust else pm).append(
                        (s, ep.bearing_deg + errors.inflow_bearing_deg)
                    )
        return pm, dust, 4.0 + 10.0 * pollution_season(when), t

    def inflow_ring(self, when: dt.datetime, errors: Errors = TRUTH) -> tuple[F, F, float]:
        """Inflow on the padded ring: haze PM2.5 and dust fields, and the total haze (ug/m3).

        The background enters mostly from the west and north-west; each active episode enters
        along its own track.
        """
        pm, dust, base, _ = self._inflow_parts(when, errors)
        scale = errors.inflow_scale
        haze = base * self.inflow_side
        for s, bearing in pm:
            haze = haze + s * self.track_side(bearing)
        dust_field = np.zeros_like(haze)
        for s, bearing in dust:
            dust_field = dust_field + s * self.track_side(bearing)
        total = base + sum(s for s, _ in pm)
        return haze * scale, dust_field * scale, total * scale

    # -- weather -----------------------------------------------------------------------------

    def weather(self, when: dt.datetime, errors: Errors = TRUTH) -> Weather:
        """Surface weather at a time (aware UTC)."""
        when_w = when + dt.timedelta(hours=errors.time_shift_h)
        t = hours_since_epoch(when_w)
        w = winter_index(when_w)
        hour_kst = (when_w.hour + when_w.minute / 60 + 9) % 24
        day = np.sin(2 * np.pi * (hour_kst - 9) / 24)  # peaks 15 KST
        daylight = max(0.0, np.sin(np.pi * (hour_kst - 6.5) / 13)) if 6.5 < hour_kst < 19.5 else 0.0
        x = self.x_km - errors.shift_km[0]
        y = self.y_km - errors.shift_km[1]
        _, _, episode = self.inflow(when, errors)

        # Synoptic waves moving east; geostrophic wind from the streamfunction.
        speed = (8.0 + 5.0 * w) * 3.6  # km/h
        u = np.full_like(x, 1.0 + 3.2 * w)
        v = np.full_like(x, 1.6 - 4.2 * w)
        psi = np.zeros_like(x)
        for lx, ly, a, ph, mod in zip(
            self._wave_l, self._wave_ly, self._wave_a, self._wave_phase, self._wave_mod, strict=True
        ):
            kx, ky = 2 * np.pi / lx, 2 * np.pi / ly
            k = np.hypot(kx, ky)
            amp = a * (1.0 + 0.4 * np.sin(2 * np.pi * t / (24 * 19) + mod)) * (1 - 0.5 * episode)
            theta = kx * (x - speed * t) + ky * y + ph
            s = np.sin(theta)
            u += amp / k * ky * s
            v -= amp / k * kx * s
            psi += amp / k * np.cos(theta)  # m/s * km
        # Episodes come with a slack westerly flow that carries the plume in.
        u += 1.5 * episode
        sbx, sby = self.sea_breeze_dir
        breeze = (2.5 - w) * (daylight - 0.25 * (1 - daylight))
        u += breeze * sbx
        v += breeze * sby
        mix = 0.85 + 0.15 * day * self.land
        u *= mix * errors.wind_scale
        v *= mix * errors.wind_scale

        p_anom = psi * 1000.0 * 1.2 * 8.6e-5 * 3.0  # Pa, geostrophic scaling
        pressure = 101_550.0 + 950.0 * (2 * w - 1) + p_anom

        doy = when_w.timetuple().tm_yday
        season = 12.5 - 14.0 * np.cos(2 * np.pi * (doy - 20) / 365.25)
        sea_season = 14.0 - 10.0 * np.cos(2 * np.pi * (doy - 45) / 365.25)
        base_t = self.land * season + (1 - self.land) * sea_season
        temperature = base_t - 0.9 * (self.lat - 37.5) + (1 + 4 * self.land) * day + 0.35 * v

        trough = -p_anom / 600.0
        meso = np.zeros_like(x)
        for (kx, ky), ph in zip(self._meso_k, self._meso_phase, strict=True):
            meso += np.cos(kx * (x - u.mean() * 3.6 * (t % 240)) + ky * y + ph)
        meso = 0.5 + meso / 12.0  # roughly 0..1
        wet_season = 1.0 + 2.5 * (1 - w) ** 2
        rain = 1.6 * wet_season * np.clip(trough - 0.75, 0, None) ** 1.5 * (0.3 + meso)
        rain += (1 - w) ** 3 * np.clip(meso - 0.82, 0, None) * 60.0 * daylight * self.land
        rain *= errors.rain_scale
        rain = np.where(rain < 0.05, 0.0, rain)

        humidity = 58.0 + 17.0 * (1 - w) + 10.0 * (1 - self.land) - 14.0 * day * self.land
        humidity += 8.0 * np.clip(trough, -1, 2) + 25.0 * np.clip(rain, 0, 1)
        humidity = np.clip(humidity, 12.0, 100.0)

        wind = np.hypot(u, v)
        night_pbl = (420.0 + 200.0 * (1 - w)) * errors.pbl_bias
        day_pbl = 800.0 + 600.0 * (1 - w)
        grow = max(0.0, np.sin(np.pi * (hour_kst - 8) / 10)) if 8 < hour_kst < 18 else 0.0
        land_pbl = night_pbl + (day_pbl - night_pbl) * grow
        pbl = self.land * land_pbl + (1 - self.land) * 650.0 + 45.0 * wind
        pbl *= 1.0 - 0.3 * episode
        return Weather(u, v, temperature, humidity, pressure, rain, pbl)

    # -- emissions and chemistry --------------------------------------------------------------

    def emissions(self, when: dt.datetime, errors: Errors = TRUTH) -> F:
        """Emission rates per tracer (ug/m3 per hour into a 1,000 m layer)."""
        w = winter_index(when)
        local = when.astimezone(KST)
        h = local.hour
        traffic = 0.6 + 0.5 * (np.exp(-(((h - 8) / 2.0) ** 2)) + np.exp(-(((h - 19) / 2.5) ** 2)))
        weekday = 0.85 if local.weekday() >= 5 else 1.0
        heating = 1.0 + 0.45 * w
        pop = self.population * errors.city_emission_bias
        ind_pm, ind_so2 = self.point_sources
        ind_pm = ind_pm * errors.industry_emission_bias
        ind_so2 = ind_so2 * errors.industry_emission_bias
        scale: F | float = errors.emission_scale
        if errors.emission_field is not None:
            scale = errors.emission_scale * _drift(
                errors.emission_field, errors.emission_field_late, h
            )
        out = np.empty((len(TRACERS), self.ny, self.nx))
        out[0] = scale * (1.8 * pop * traffic * weekday * heating + 1.2 * ind_pm)
        out[1] = 0.0
        out[2] = scale * (2.0 * pop * traffic * weekday + 0.6 * ind_pm)
        out[3] = scale * (9.0 * pop * traffic * weekday * heating + 2.0 * ind_pm)
        out[4] = scale * (0.6 * pop * heating + 3.0 * ind_so2)
        return out

    def background(self, when: dt.datetime) -> F:
        """Clean-air concentrations per tracer."""
        w = winter_index(when)
        return np.array([2.0 + 1.5 * w, 2.0 + 2.0 * w, 4.0, 1.0 + 1.0 * w, 0.8])

    def initial_state(self, when: dt.datetime) -> State:
        """A clean start: background everywhere (used before the spin-up)."""
        bg = self.background(when)
        tracers = np.broadcast_to(bg[:, None, None], (len(TRACERS), self.ny, self.nx)).copy()
        return State(tracers, self.weather(when).pbl, when)

    def step(self, state: State, errors: Errors = TRUTH) -> tuple[State, Weather]:
        """Advance the world by one hour; return the new state and the weather used."""
        when = state.time + dt.timedelta(hours=1)
        wx = self.weather(when, errors)
        bg = self.background(when)
        ring_pm, ring_dust, inflow_pm = self.inflow_ring(when, errors)
        c = state.tracers
        # Semi-Lagrangian advection: values come from where the air was an hour ago.
        pad = self.PAD
        shifts = 3600.0 / (self.cell_km * 1000.0)
        jd = self.jj - wx.v * shifts + pad
        id_ = self.ii - wx.u * shifts + pad
        coords = np.array(
            [np.clip(jd, 0, self.ny + 2 * pad - 1), np.clip(id_, 0, self.nx + 2 * pad - 1)]
        )
        ring_add = (0.3 * ring_pm, 0.7 * ring_pm, ring_dust, 0.4 * ring_pm, 0.1 * ring_pm)
        bg_map: F | float = 1.0
        ring_bg_map: F | float = 1.0
        if errors.background_field is not None:
            bg_map = errors.background_field
            ring_bg_map = np.pad(bg_map, pad, mode="edge")
        new = np.empty_like(c)
        for k in range(len(TRACERS)):
            padded = np.pad(c[k], pad, mode="edge")
            ring = bg[k] * ring_bg_map + ring_add[k]
            inner = np.zeros_like(padded, dtype=bool)
            inner[pad:-pad, pad:-pad] = True
            padded = np.where(inner, padded, 0.5 * padded + 0.5 * ring)
            padded[: pad // 2] = ring[: pad // 2]
            padded[-pad // 2 :] = ring[-pad // 2 :]
            padded[:, : pad // 2] = ring[:, : pad // 2]
            padded[:, -pad // 2 :] = ring[:, -pad // 2 :]
            new[k] = map_coordinates(padded, coords, order=1, mode="nearest")
        # Emissions into the boundary layer.
        new += self.emissions(when, errors) * (1000.0 / wx.pbl)[None]
        # A deepening boundary layer entrains air from aloft (background plus long-range PM).
        grow = np.clip(1.0 - state.pbl / wx.pbl, 0.0, 1.0)[None]
        aloft = bg.copy()
        aloft[0] += 0.25 * inflow_pm
        aloft[1] += 0.45 * inflow_pm
        new = new * (1 - grow) + aloft[:, None, None] * grow * bg_map
        # Secondary formation, faster in humid air and in the cold.
        w = winter_index(when)
        humid = 1.0 / (1.0 + np.exp(-(wx.humidity - 72.0) / 6.0))
        rate = 0.018 * (0.35 + humid * errors.humid_secondary_bias ** (humid > 0.5)) * (1 + 0.6 * w)
        if errors.secondary_field is not None:
            rate = rate * _drift(
                errors.secondary_field, errors.secondary_field_late, when.astimezone(KST).hour
            )
        new[1] += rate * (0.12 * new[3] + 0.6 * new[4])
        new[4] *= 1 - 0.3 * rate
        # Wet removal and dry deposition.
        wash = np.exp(-0.22 * wx.rain / errors.washout_bias)
        new[:3] *= wash[None]
        new[3:] *= np.exp(-0.05 * wx.rain)[None]
        new *= np.exp(-1.0 / np.array([60.0, 80.0, 14.0, 40.0, 30.0]))[:, None, None]
        # A little horizontal diffusion.
        lap = (
            np.roll(new, 1, 1)
            + np.roll(new, -1, 1)
            + np.roll(new, 1, 2)
            + np.roll(new, -1, 2)
            - 4 * new
        )
        new += 0.05 * lap
        np.maximum(new, 0.0, out=new)
        return State(new, wx.pbl, when), wx

    def chemistry(self, state: State, wx: Weather) -> dict[str, F]:
        """Surface concentrations in canonical units (ppm, ug/m3) from tracers and weather."""
        c = state.tracers
        when = state.time
        hour_kst = (when.hour + 9) % 24
        daylight = max(0.0, np.sin(np.pi * (hour_kst - 6.5) / 13)) if 6.5 < hour_kst < 19.5 else 0.0
        doy = when.timetuple().tm_yday
        pm25 = c[0] + c[1]
        pm10 = pm25 + c[2]
        comb = c[3]
        # Titration and dilution keep gases bounded however much is emitted: each saturates
        # smoothly below the highest hourly values measured in Korea (NO2 ~0.2 ppm at
        # roadsides, CO a few ppm, SO2 ~0.1 ppm beside smelters).
        floor, ceiling = GAS_FLOOR_PPM, GAS_CEILING_PPM
        no2 = floor["no2"] + _saturate(0.0011 * comb * (1.15 - 0.35 * daylight), ceiling["no2"])
        co = floor["co"] + _saturate(0.0075 * comb, ceiling["co"])
        so2 = floor["so2"] + _saturate(0.0009 * c[4], ceiling["so2"])
        o3_bg = 0.030 + 0.010 * np.sin(2 * np.pi * (doy - 60) / 365.25)
        photo = daylight * np.clip(wx.temperature - 5.0, 0, None) * 0.0012
        o3 = np.clip(o3_bg + photo - 0.35 * (no2 - 0.002) * (1.3 - daylight), 0.001, None)
        return {"co": co, "so2": so2, "o3": o3, "no2": no2, "pm10": pm10, "pm25": pm25}


def _drift(early: F, late: F | None, hour_kst: int) -> F:
    """An error map that drifts from ``early`` at 00 KST to ``late`` at 23 KST."""
    if late is None:
        return early
    f = hour_kst / 23.0
    return (1.0 - f) * early + f * late


#: Where each gas levels off above its background (ppm); see :meth:`World.chemistry`.
GAS_CEILING_PPM = {"no2": 0.25, "co": 8.0, "so2": 0.3}
#: Each gas's clean-air concentration (ppm), on which the emitted part is added.
GAS_FLOOR_PPM = {"no2": 0.002, "co": 0.12, "so2": 0.0012}


def _saturate(x: F, ceiling: float) -> F:
    """Linear for small ``x``, levelling off smoothly at ``ceiling``."""
    return ceiling * np.tanh(x / ceiling)


#: The forecast model's fixed biases (factors; 1 is none), fields of :class:`Errors`.
BIASES = {
    "city_emission_bias": 1.4,
    "industry_emission_bias": 0.6,
    "humid_secondary_bias": 2.2,
    "washout_bias": 2.2,
    "pbl_bias": 0.6,
    "inflow_bias": 1.0,
}


def systematic_errors() -> Errors:
    """The forecast model's fixed biases (:data:`BIASES`): the learnable part of its error."""
    b = BIASES
    return Errors(
        city_emission_bias=b["city_emission_bias"],
        industry_emission_bias=b["industry_emission_bias"],
        humid_secondary_bias=b["humid_secondary_bias"],
        washout_bias=b["washout_bias"],
        pbl_bias=b["pbl_bias"],
        inflow_bias=b["inflow_bias"],
    )


def reanalysis_errors() -> Errors:
    """The analysis background's errors: the forecast model's fixed biases, but the boundary
    inflow of a global reanalysis rather than of the global forecast (no ``inflow_bias``)."""
    return replace(systematic_errors(), inflow_bias=1.0)


#: Spread of the forecast's day-to-day random errors (standard deviations; "log" ones are of
#: the logarithm of a multiplicative factor). The domain-wide emission factor is small and
#: bounded; most of the error is in where and when: local emissions, the weather's timing and
#: position, and the plumes' timing and tracks.
RANDOM_SPREAD = {
    "weather timing (h)": 3.5,
    "synoptic position (km)": 70.0,
    "wind speed (fraction)": 0.15,
    "emissions, whole domain (log)": 0.12,
    "emissions, smooth local map (log)": 0.5,
    "secondary formation, regional map (log)": 0.6,
    "transboundary inflow amplitude (log)": 0.08,
    "transboundary inflow timing (h)": 1.0,
    "plume track (deg)": 5.0,
    "clean-air background, regional map (log)": 0.3,
    "rain amount (log)": 0.4,
}
#: Bounds of the domain-wide emission factor.
EMISSION_SCALE_BOUNDS = (0.75, 1.33)
#: The forecast weather's mean wind-speed factor: below one, WRF's winds are systematically too
#: slow (a learnable error, visible in the forecast's own winds; the reanalysis has the true ones).
WIND_SCALE_MEAN = 0.95
#: Correlation lengths of the local emission and the regional secondary-formation error maps,
#: in cells.
EMISSION_MAP_CELLS, SECONDARY_MAP_CELLS, BACKGROUND_MAP_CELLS = 3.0, 6.0, 8.0


def random_errors(seed: int, day: dt.date, shape: tuple[int, int]) -> Errors:
    """The CMAQ forecast's errors for a target day: random parts drawn per day, biases fixed."""
    rng = np.random.default_rng([seed, day.toordinal(), 23])
    sd = RANDOM_SPREAD
    domain = rng.lognormal(
        -(sd["emissions, whole domain (log)"] ** 2) / 2, sd["emissions, whole domain (log)"]
    )
    inflow_sd = sd["transboundary inflow amplitude (log)"]
    local_sd = sd["emissions, smooth local map (log)"]
    regional_sd = sd["secondary formation, regional map (log)"]
    return replace(
        systematic_errors(),
        time_shift_h=float(rng.normal(0.0, sd["weather timing (h)"])),
        shift_km=(
            float(rng.normal(0.0, sd["synoptic position (km)"])),
            float(rng.normal(0.0, sd["synoptic position (km)"])),
        ),
        wind_scale=float(
            np.clip(rng.normal(WIND_SCALE_MEAN, sd["wind speed (fraction)"]), 0.5, 1.5)
        ),
        emission_scale=float(np.clip(domain, *EMISSION_SCALE_BOUNDS)),
        emission_field=_smooth_noise(rng, shape, local_sd, EMISSION_MAP_CELLS),
        emission_field_late=_smooth_noise(rng, shape, local_sd, EMISSION_MAP_CELLS),
        secondary_field=_smooth_noise(rng, shape, regional_sd, SECONDARY_MAP_CELLS),
        secondary_field_late=_smooth_noise(rng, shape, regional_sd, SECONDARY_MAP_CELLS),
        background_field=_smooth_noise(
            rng, shape, sd["clean-air background, regional map (log)"], BACKGROUND_MAP_CELLS
        ),
        inflow_scale=float(rng.lognormal(-(inflow_sd**2) / 2, inflow_sd)),
        inflow_shift_h=float(rng.normal(0.0, sd["transboundary inflow timing (h)"])),
        inflow_bearing_deg=float(rng.normal(0.0, sd["plume track (deg)"])),
        rain_scale=float(rng.lognormal(0.0, sd["rain amount (log)"])),
    )


#: The true emissions' own day-to-day variability, which no inventory knows: the log-standard
#: deviation of a smooth local multiplicative map (``EMISSION_MAP_CELLS``) drifting from 00 to
#: 23 KST. CMAQ's error from it cannot be learned from CMAQ's inputs.
TRUE_EMISSION_LOG_SD = 0.8


def true_variability(seed: int, day: dt.date, shape: tuple[int, int]) -> Errors:
    """How the true world's emissions depart from their climatology on ``day`` (weather exact)."""
    if TRUE_EMISSION_LOG_SD <= 0.0:
        return TRUTH
    rng = np.random.default_rng([seed, day.toordinal(), 31])
    return Errors(
        emission_field=_smooth_noise(rng, shape, TRUE_EMISSION_LOG_SD, EMISSION_MAP_CELLS),
        emission_field_late=_smooth_noise(rng, shape, TRUE_EMISSION_LOG_SD, EMISSION_MAP_CELLS),
    )


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float, cells: float
) -> F:
    """A smooth lognormal multiplicative field with log-standard deviation ``sigma``."""
    field = gaussian_filter(rng.normal(0.0, 1.0, shape), cells)
    noise = np.exp(field * sigma / max(float(field.std()), 1e-9))
    # Bounded: a forecast may be off by a factor of five somewhere, not by a factor of twenty.
    noise = np.clip(noise / noise.mean(), 0.2, 5.0)
    return noise / noise.mean()
