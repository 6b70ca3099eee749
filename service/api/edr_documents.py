"""OGC API - EDR 1.1 metadata and CoverageJSON documents of the forecast, built from models.

Pure functions from plain inputs (the grid, dates, values) to ``edr-pydantic`` and
``covjson-pydantic`` models, so the documents are validated as they are built and can be
tested without a server; :mod:`service.api.edr` serves them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from covjson_pydantic.coverage import Coverage, CoverageCollection
from covjson_pydantic.domain import Axes, Domain, DomainType, ValuesAxis
from covjson_pydantic.ndarray import NdArrayFloat
from covjson_pydantic.observed_property import ObservedProperty as CovObservedProperty
from covjson_pydantic.parameter import Parameter as CovParameter
from covjson_pydantic.parameter import Parameters as CovParameters
from covjson_pydantic.reference_system import ReferenceSystem, ReferenceSystemConnectionObject
from covjson_pydantic.unit import Symbol as CovSymbol
from covjson_pydantic.unit import Unit as CovUnit
from edr_pydantic.capabilities import ConformanceModel, LandingPageModel
from edr_pydantic.collections import Collection, Collections, Instance, Instances
from edr_pydantic.data_queries import DataQueries, EDRQuery
from edr_pydantic.extent import Extent, Spatial, Temporal
from edr_pydantic.link import EDRQueryLink, Link
from edr_pydantic.observed_property import ObservedProperty
from edr_pydantic.parameter import MeasurementType, Parameter, Parameters
from edr_pydantic.unit import Symbol, Unit
from edr_pydantic.variables import RadiusVariables, Variables

from service.grid import Grid

COLLECTION_ID = "pm25-forecast"
PARAMETER = "pm25"
COVJSON = "application/prs.coverage+json"
GEOJSON = "application/geo+json"
NETCDF = "application/x-netcdf"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: The spellings of CRS84 the ``crs`` parameter accepts (the only CRS served).
CRS84_NAMES = frozenset({"CRS84", "OGC:CRS84", CRS84, "[OGC:CRS84]"})
TRS = (
    'TIMECRS["DateTime",TDATUM["Gregorian Calendar"],'
    'CS[TemporalDateTime,1],AXIS["Time (T)",future]]'
)
UCUM = "http://www.opengis.net/def/uom/UCUM/"
STANDARD_NAME = "mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air"
OBSERVED_ID = f"https://vocab.nerc.ac.uk/standard_name/{STANDARD_NAME}/"
OBSERVED_LABEL = "Mass concentration of PM2.5 ambient aerosol particles in air"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/core",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/collections",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/json",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/covjson",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/queries",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/instances",
)
#: The output formats of each query (the first is the default).
QUERY_FORMATS: dict[str, tuple[str, ...]] = {
    "position": ("CoverageJSON",),
    "radius": ("CoverageJSON",),
    "area": ("CoverageJSON", "NetCDF"),
    "cube": ("CoverageJSON", "NetCDF"),
    "locations": ("GeoJSON", "CoverageJSON"),
}
F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


def _link(href: str, rel: str, type_: str = "application/json", title: str | None = None) -> Link:
    return Link(href=href, rel=rel, type=type_, title=title)


#: What the metadata adds when a model trained on SYNTHETIC data made a forecast served.
SYNTHETIC_NOTE = (
    " SYNTHETIC: the model was trained on SYNTHETIC twin data; its values are not a real "
    "air-quality forecast."
)


def _keywords(words: list[str], synthetic: bool) -> list[str]:
    return [*words, "SYNTHETIC"] if synthetic else words


def landing_page(base: str, *, synthetic: bool = False) -> LandingPageModel:
    """The EDR landing page at ``base`` (the URL of ``/edr``); ``synthetic``: a published
    forecast comes from a model trained on SYNTHETIC data (said in the description)."""
    return LandingPageModel(
        title="pm25-forecast: OGC API - Environmental Data Retrieval",
        description=(
            "Tomorrow's hourly PM2.5 (ug/m3) over South Korea on a 9 km Lambert grid; each "
            "published daily run is an instance named by its target date (KST)."
            + (SYNTHETIC_NOTE if synthetic else "")
        ),
        keywords=_keywords(["PM2.5", "air quality", "forecast", "South Korea"], synthetic),
        links=[
            _link(base, "self", title="this document"),
            _link(f"{base}/conformance", "conformance", title="conformance classes"),
            _link(f"{base}/collections", "data", title="the collections"),
            _link("/openapi.json", "service-desc", "application/vnd.oai.openapi+json;version=3.0"),
            _link("/docs", "service-doc", "text/html", "the API documentation"),
        ],
    )


def conformance() -> ConformanceModel:
    return ConformanceModel(conformsTo=list(CONFORMANCE))


def bbox_crs84(grid: Grid) -> list[float]:
    """``[minlon, minlat, maxlon, maxlat]`` of the grid's outer edges (degrees)."""
    nrows, ncols = grid.shape
    rows = np.concatenate(
        [
            np.full(ncols + 1, -0.5),
            np.full(ncols + 1, nrows - 0.5),
            np.linspace(-0.5, nrows - 0.5, nrows + 1),
            np.linspace(-0.5, nrows - 0.5, nrows + 1),
        ]
    )
    cols = np.concatenate(
        [np.linspace(-0.5, ncols - 0.5, ncols + 1)] * 2
        + [np.full(nrows + 1, -0.5), np.full(nrows + 1, ncols - 0.5)]
    )
    lat, lon = grid.rowcol_to_latlon(rows, cols)
    return [round(float(v), 4) for v in (lon.min(), lat.min(), lon.max(), lat.max())]


def parameter() -> Parameter:
    return Parameter(
        id=PARAMETER,
        label="PM2.5",
        description="Hourly mean PM2.5 forecast (ConvLSTM-corrected CMAQ)",
        dataType="float",
        unit=Unit(label="ug/m3", symbol=Symbol(value="ug/m3", type=UCUM)),
        observedProperty=ObservedProperty(id=OBSERVED_ID, label=OBSERVED_LABEL),
        measurementType=MeasurementType(method="mean", duration="PT1H"),
    )


def _query(href: str, query: str, title: str) -> EDRQuery:
    formats = list(QUERY_FORMATS[query])
    extra: dict[str, Any] = {
        "query_type": query,
        "output_formats": formats,
        "default_output_format": formats[0],
        "crs_details": [{"crs": "OGC:CRS84", "wkt": "CRS84 (longitude, latitude; WGS 84)"}],
    }
    variables: Variables = (
        RadiusVariables(**extra, within_units=["km"]) if query == "radius" else Variables(**extra)
    )
    return EDRQuery(
        link=EDRQueryLink(
            href=f"{href}/{query}",
            rel="data",
            title=title,
            templated=False,
            variables=variables,
            type=COVJSON,
        )
    )


def _temporal(dates: Sequence[dt.date], times: Any) -> Temporal:
    first, last = times(dates[0]), times(dates[-1])
    return Temporal(
        interval=[[first[0], last[-1]]],
        values=[f"R24/{times(d)[0].isoformat()}/PT1H" for d in dates],
        trs=TRS,
    )


def collection(
    base: str,
    grid: Grid,
    dates: Sequence[dt.date],
    times: Any,
    *,
    instance: dt.date | None = None,
    synthetic: bool = False,
) -> Collection:
    """The collection (``instance`` None) or one instance: extent, queries and parameter.

    ``dates`` are the published target dates, oldest first; ``times(date)`` gives a date's 24
    aware valid times; ``synthetic``: a model trained on SYNTHETIC data made (one of) the
    forecasts, which the description and keywords then say.
    """
    href = f"{base}/collections/{COLLECTION_ID}"
    if instance is not None:
        href = f"{href}/instances/{instance.isoformat()}"
    extent = Extent(
        spatial=Spatial(bbox=[bbox_crs84(grid)], crs=CRS84),
        temporal=_temporal([instance] if instance else dates, times) if dates else None,
    )
    queries = {
        "position": _query(href, "position", "24 hourly values at points"),
        "radius": _query(href, "radius", "grid cells within a distance of a point"),
        "area": _query(href, "area", "grid cells inside a polygon"),
        "cube": _query(href, "cube", "grid cells inside a bounding box"),
        "locations": _query(href, "locations", "the AirKorea stations"),
    }
    links = [_link(href, "self"), _link(href, "data", COVJSON, "the latest forecast")]
    if instance is None:
        queries["instances"] = EDRQuery(
            link=EDRQueryLink(
                href=f"{href}/instances",
                rel="data",
                title="daily runs",
                variables=Variables(query_type="instances"),
            )
        )
        links.append(_link(f"{href}/instances", "instances", title="one instance per daily run"))
    fields: dict[str, Any] = {
        "id": instance.isoformat() if instance else COLLECTION_ID,
        "title": f"PM2.5 forecast for {instance} (KST)" if instance else "PM2.5 forecast",
        "description": (
            "Hourly PM2.5 for the 24 hours 00:00-23:00 KST of each target date, on the 59 x 68 "
            "Lambert conformal 9 km grid over South Korea. Point values are bilinear "
            "(default) or nearest-cell." + (SYNTHETIC_NOTE if synthetic else "")
        ),
        "keywords": _keywords(["PM2.5", "forecast"], synthetic),
        "links": links,
        "extent": extent,
        "data_queries": DataQueries(**queries),
        "crs": ["OGC:CRS84"],
        "output_formats": ["CoverageJSON", "GeoJSON", "NetCDF"],
        "parameter_names": Parameters({PARAMETER: parameter()}),
        "distanceunits": ["km"],
    }
    return Instance(**fields) if instance else Collection(**fields)


def collections(
    base: str, grid: Grid, dates: Sequence[dt.date], times: Any, *, synthetic: bool = False
) -> Collections:
    return Collections(
        links=[_link(f"{base}/collections", "self")],
        collections=[collection(base, grid, dates, times, synthetic=synthetic)],
    )


def instances(
    base: str,
    grid: Grid,
    dates: Sequence[dt.date],
    times: Any,
    synthetic: Sequence[dt.date] = (),
) -> Instances:
    """Every published run, newest first; ``synthetic``: the dates whose model was trained on
    SYNTHETIC data."""
    href = f"{base}/collections/{COLLECTION_ID}/instances"
    marked = set(synthetic)
    return Instances(
        links=[_link(href, "self")],
        instances=[
            cast(
                Instance,
                collection(base, grid, dates, times, instance=d, synthetic=d in marked),
            )
            for d in reversed(dates)
        ],
    )


# --- CoverageJSON --------------------------------------------------------------------------


def _cov_parameters(method: str | None) -> CovParameters:
    description = "Hourly mean PM2.5 forecast"
    if method:
        description += f"; {method} interpolation from the 9 km grid cell centres"
    return CovParameters(
        {
            PARAMETER: CovParameter(
                id=PARAMETER,
                label={"en": "PM2.5"},
                description={"en": description},
                observedProperty=CovObservedProperty(id=OBSERVED_ID, label={"en": OBSERVED_LABEL}),
                unit=CovUnit(label={"en": "ug/m3"}, symbol=CovSymbol(value="ug/m3", type=UCUM)),
            )
        }
    )


def _lonlat_referencing() -> list[ReferenceSystemConnectionObject]:
    return [
        ReferenceSystemConnectionObject(
            coordinates=["x", "y"], system=ReferenceSystem(type="GeographicCRS", id=CRS84)
        ),
        ReferenceSystemConnectionObject(
            coordinates=["t"], system=ReferenceSystem(type="TemporalRS", calendar="Gregorian")
        ),
    ]


def point_series(
    lon: float,
    lat: float,
    times: Sequence[dt.datetime],
    values: Sequence[float],
    method: str,
    *,
    ident: str | None = None,
    extra: dict[str, Any] | None = None,
    standalone: bool = True,
) -> Coverage:
    """A PointSeries coverage of one point's hourly values (``values`` already rounded)."""
    domain = Domain(
        domainType=DomainType.point_series,
        axes=Axes(
            x=ValuesAxis[float](values=[lon]),
            y=ValuesAxis[float](values=[lat]),
            t=ValuesAxis[dt.datetime](values=list(times)),
        ),
        referencing=_lonlat_referencing() if standalone else None,
    )
    return Coverage(
        id=ident,
        domain=domain,
        parameters=_cov_parameters(method) if standalone else None,
        ranges={PARAMETER: _ndarray(list(values), ["t"], [len(values)])},
        interpolation=method,
        **(extra or {}),
    )


def point_collection(coverages: list[Coverage], method: str, **extra: Any) -> CoverageCollection:
    """The coverages of several points, sharing parameters and referencing."""
    return CoverageCollection(
        domainType=DomainType.point_series,
        coverages=coverages,
        parameters=_cov_parameters(method),
        referencing=_lonlat_referencing(),
        interpolation=method,
        **extra,
    )


def _ndarray(values: list[float | None], axes: list[str], shape: list[int]) -> NdArrayFloat:
    return NdArrayFloat(values=values, axisNames=axes, shape=shape)


def grid_coverage(
    grid: Grid,
    field: F32,
    hours: Sequence[int],
    times: Sequence[dt.datetime],
    mask: Mask,
    **extra: Any,
) -> Coverage:
    """A Grid coverage of the cells where ``mask`` holds, over their row/column bounding box.

    The axes are the grid's projected x/y (metres, Lambert conformal, the CRS's WKT in the
    referencing); cells of the box outside the selection are null. ``pm25:rows`` and
    ``pm25:cols`` name the box's first and last row and column of the service grid, and
    ``pm25:lon``/``pm25:lat`` each cell centre's longitude/latitude, row by row.
    """
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
    box = mask[r0 : r1 + 1, c0 : c1 + 1]
    values: list[float | None] = []
    for h in hours:
        # rounded in float64, as /v1's grid and point write them (12.34, not 12.3400001)
        cells = np.round(field[h, r0 : r1 + 1, c0 : c1 + 1].astype(np.float64), 2).tolist()
        for row, keep in zip(cells, box.tolist(), strict=True):
            values.extend(v if k else None for v, k in zip(row, keep, strict=True))
    lon_c, lat_c = grid.centre_lonlat
    domain = Domain(
        domainType=DomainType.grid,
        axes=Axes(
            x=ValuesAxis[float](values=[float(v) for v in grid.x_centres[c0 : c1 + 1]]),
            y=ValuesAxis[float](values=[float(v) for v in grid.y_centres[r0 : r1 + 1]]),
            t=ValuesAxis[dt.datetime](values=list(times)),
        ),
        referencing=[
            ReferenceSystemConnectionObject(
                coordinates=["x", "y"],
                system=ReferenceSystem(
                    type="ProjectedCRS",
                    description={"en": "Lambert conformal conic, 9 km service grid"},
                    wkt=grid.crs.to_wkt(),
                ),
            ),
            ReferenceSystemConnectionObject(
                coordinates=["t"], system=ReferenceSystem(type="TemporalRS", calendar="Gregorian")
            ),
        ],
    )
    nt, ny, nx = len(hours), r1 - r0 + 1, c1 - c0 + 1
    return Coverage(
        domain=domain,
        parameters=_cov_parameters(None),
        ranges={PARAMETER: _ndarray(values, ["t", "y", "x"], [nt, ny, nx])},
        **{
            "pm25:rows": [r0, r1],
            "pm25:cols": [c0, c1],
            "pm25:cells": int(box.sum()),
            "pm25:lon": np.round(lon_c[r0 : r1 + 1, c0 : c1 + 1], 5).ravel().tolist(),
            "pm25:lat": np.round(lat_c[r0 : r1 + 1, c0 : c1 + 1], 5).ravel().tolist(),
            **extra,
        },
    )


def dump(model: Any) -> dict[str, Any]:
    """A model as the JSON the API sends (no null members)."""
    out: dict[str, Any] = model.model_dump(mode="json", exclude_none=True, by_alias=True)
    return out
