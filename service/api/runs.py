"""Run routes: history, one run, the monitoring summary, and (admin) re-runs."""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from service.api.app import Problem
from service.api.forecasts import StateDep, parse_date
from service.storage import repository as repo
from service.storage.db import transaction
from service.storage.tables import Run, RunStatus

router = APIRouter(prefix="/v1", tags=["runs"])
SEOUL = ZoneInfo("Asia/Seoul")


def run_body(run: Run, published_id: int | None = None) -> dict[str, Any]:
    """Everything an operator needs to know about one attempt."""
    model = run.model
    return {
        "run_id": run.id,
        "target_date": run.target_date.isoformat(),
        "attempt": run.attempt,
        "status": run.status.value,
        "published": published_id == run.id,
        "cmaq_fallback": run.fallback,
        "trigger": run.trigger,
        "created_at": _kst(run.created_at),
        "started_at": _kst(run.started_at),
        "finished_at": _kst(run.finished_at),
        "stage": run.stage,
        "error": run.error,
        "timings_s": run.timings,
        "inputs": run.inputs.get("files", []),
        "cmaq_init": _kst(run.cmaq_init),
        "wrf_init": _kst(run.wrf_init),
        "model": {
            "name": model.name,
            "version": model.version,
            "case": model.case,
            "sha256": model.sha256,
            "trained_on_synthetic_data": model.synthetic,
        }
        if model
        else None,
        "field_stats": run.stats,
    }


def _kst(value: dt.datetime | None) -> str | None:
    return value.astimezone(SEOUL).isoformat() if value else None


@router.get("/runs", summary="Run history, newest first")
def list_runs(
    state: StateDep,
    status: Annotated[
        Literal["pending", "waiting_for_inputs", "running", "succeeded", "failed", "late"] | None,
        Query(),
    ] = None,
    from_: Annotated[dt.date | None, Query(alias="from")] = None,
    to: Annotated[dt.date | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    with state.sessions() as s:
        runs, total = repo.list_runs(
            s, status=status, start=from_, end=to, limit=limit, offset=offset
        )
        pubs = {r.target_date: repo.published_run(s, r.target_date) for r in runs}
        items = [run_body(r, p.id if (p := pubs[r.target_date]) else None) for r in runs]
    nxt = offset + limit if offset + limit < total else None
    return {"total": total, "limit": limit, "offset": offset, "next_offset": nxt, "runs": items}


@router.get("/runs/latest", summary="The newest run")
def latest_run(state: StateDep) -> dict[str, Any]:
    with state.sessions() as s:
        runs, _ = repo.list_runs(s, limit=1)
        if not runs:
            raise Problem(404, "No run", "no run has been recorded yet")
        pub = repo.published_run(s, runs[0].target_date)
        return run_body(runs[0], pub.id if pub else None)


@router.get("/runs/{date}", summary="The runs of one target date")
def runs_of_date(date: str, state: StateDep) -> dict[str, Any]:
    """The published run of the date (if any) and every attempt, oldest first."""
    day = parse_date(date, state)
    with state.sessions() as s:
        attempts = repo.runs_for_date(s, day)
        if not attempts:
            raise Problem(404, "No run", f"no run for {day}")
        pub = repo.published_run(s, day)
        pid = pub.id if pub else None
        return {
            "target_date": day.isoformat(),
            "published_run_id": pid,
            "latest": run_body(attempts[-1], pid),
            "attempts": [run_body(r, pid) for r in attempts],
        }


@router.get("/status", summary="The monitoring summary")
def status(state: StateDep) -> dict[str, Any]:
    """Tomorrow's run, the last success, lateness against the deadline, the scheduler, 14 days."""
    settings = state.settings
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(SEOUL).date()
    tomorrow = today + dt.timedelta(days=1)
    hh, mm = (int(v) for v in settings.deadline_time_kst.split(":"))
    deadline = dt.datetime.combine(today, dt.time(hh, mm), tzinfo=SEOUL)
    with state.sessions() as s:
        t_runs = repo.runs_for_date(s, tomorrow)
        t_pub = repo.published_run(s, tomorrow)
        last_ok = repo.latest_published(s)
        beat = repo.last_beat(s, "scheduler")
        days = []
        for k in range(14):
            d = tomorrow - dt.timedelta(days=k)
            runs = repo.runs_for_date(s, d)
            pub = repo.published_run(s, d)
            days.append(
                {
                    "date": d.isoformat(),
                    "status": runs[-1].status.value if runs else "none",
                    "attempts": len(runs),
                    "published": pub is not None,
                    "cmaq_fallback": bool(pub and pub.fallback),
                }
            )
        tomorrow_state = t_runs[-1].status.value if t_runs else "none"
        late = t_pub is None and now > deadline
        heartbeat = None
        if beat is not None:
            heartbeat = {
                "seen_at": _kst(beat.seen_at),
                "age_s": round((now - beat.seen_at).total_seconds(), 1),
                "leader": bool(beat.info.get("leader")),
            }
        body: dict[str, Any] = {
            "now": now.astimezone(SEOUL).isoformat(),
            "tomorrow": {
                "date": tomorrow.isoformat(),
                "state": tomorrow_state,
                "published": t_pub is not None,
                "deadline": deadline.isoformat(),
                "late": late,
                "failed": bool(t_runs) and t_runs[-1].status == RunStatus.FAILED,
                "error": t_runs[-1].error if t_runs else None,
            },
            "last_success": {
                "date": last_ok.target_date.isoformat(),
                "run_id": last_ok.id,
                "published_at": _kst(last_ok.finished_at),
                "cmaq_fallback": last_ok.fallback,
            }
            if last_ok
            else None,
            "scheduler": heartbeat,
            "last_14_days": days,
        }
    body["healthy"] = bool(last_ok) and not late and not body["tomorrow"]["failed"]
    return body


@router.post("/runs/{date}", status_code=202, summary="Start or re-run a date (admin)")
def start_run(
    date: str, state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Queue a run of ``date``; the scheduler process picks it up at its next tick.

    Requires ``Authorization: Bearer <PM25_ADMIN_TOKEN>``.
    """
    token = state.settings.admin_token.get_secret_value()
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise Problem(
            401, "Unauthorized", "a valid admin token is required (Authorization: Bearer ...)"
        )
    day = parse_date(date, state)
    with transaction(state.sessions) as s:
        runs = repo.runs_for_date(s, day)
        if runs and runs[-1].status in (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING):
            run = runs[-1]
        else:
            run = repo.new_run(s, day, "api")
            run.status = RunStatus.PENDING
            run.started_at = None
        body = {
            "run_id": run.id,
            "target_date": day.isoformat(),
            "status": run.status.value,
            "message": "queued: the scheduler runs it at its next tick",
        }
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/runs/{day}"})
