"""Repository functions for verification scores (``verification_scores``), ``session`` passed in."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session, defer

from service.storage.repository import now
from service.storage.tables import Publication, VerificationScore


def save_day(
    session: Session,
    date: dt.date,
    run_id: int,
    scores: dict[str, dict[str, Any]],
    provenance: dict[str, dict[str, Any]],
) -> list[VerificationScore]:
    """Store one date's scores (source -> :func:`service.verification.scores.score_source`
    result), replacing any earlier verification of the date: re-verifying is idempotent."""
    session.execute(delete(VerificationScore).where(VerificationScore.target_date == date))
    at = now()
    rows = []
    for source, s in scores.items():
        cells, stations = s["cells"], s.get("stations")
        skill = s.get("skill") or {}
        row = VerificationScore(
            target_date=date,
            source=source,
            run_id=run_id,
            computed_at=at,
            rmse=cells["rmse"],
            bias=cells["bias"],
            mae=cells["mae"],
            r=cells["r"],
            station_rmse=stations["rmse"] if stations else None,
            peak_rmse=s["peak"]["rmse"],
            peak_n=s["peak"]["n"],
            grade_accuracy=s["grades"]["accuracy"],
            skill_vs_cmaq=skill.get("vs_cmaq"),
            skill_vs_persistence=skill.get("vs_persistence"),
            scores=s,
            provenance=provenance.get(source, {}),
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def scores_of_date(session: Session, date: dt.date) -> dict[str, VerificationScore]:
    """The stored scores of ``date`` by source (empty when it was never verified)."""
    rows = session.scalars(select(VerificationScore).where(VerificationScore.target_date == date))
    return {r.source: r for r in rows}


def scores_between(
    session: Session, start: dt.date, end: dt.date, *, full: bool = True
) -> list[VerificationScore]:
    """Every stored score of the dates ``start..end``, oldest first.

    ``full=False`` leaves the JSON of every score unloaded (the headline columns only).
    """
    q = (
        select(VerificationScore)
        .where(VerificationScore.target_date >= start, VerificationScore.target_date <= end)
        .order_by(VerificationScore.target_date, VerificationScore.source)
    )
    if not full:
        q = q.options(defer(VerificationScore.scores), defer(VerificationScore.provenance))
    return list(session.scalars(q))


def latest_verified_date(session: Session) -> dt.date | None:
    """The newest date with stored scores."""
    return session.scalar(
        select(VerificationScore.target_date)
        .order_by(VerificationScore.target_date.desc())
        .limit(1)
    )


def dates_to_verify(session: Session, until: dt.date) -> list[dt.date]:
    """Published dates up to ``until`` that were never verified, or whose published run is not
    the one verified (a re-published forecast), oldest first."""
    q = (
        select(Publication.target_date)
        .outerjoin(
            VerificationScore,
            and_(
                VerificationScore.target_date == Publication.target_date,
                VerificationScore.source == "model",
            ),
        )
        .where(Publication.target_date <= until)
        .where(or_(VerificationScore.id.is_(None), VerificationScore.run_id != Publication.run_id))
        .order_by(Publication.target_date)
    )
    return list(session.scalars(q))
