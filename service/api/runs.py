"""Run routes: history, one run, the monitoring summary, and (admin) re-runs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from service.api.auth import require_admin
from service.api.deps import (
    AppState,
    DatePath,
    IsoDate,
    Problem,
    StateDep,
    WholeNumber,
    clip,
    parse_date,
    run_date_refusal,
)
from service.api.schemas import (
    DayStatus,
    LastSuccess,
    RunInfo,
    RunList,
    RunQueued,
    RunsOfDate,
    SchedulerBeat,
    Status,
    TomorrowStatus,
)
from service.api.verification import model_drift
from service.storage import repository as repo
from service.storage.db import transaction
from service.storage.tables import Run, RunStatus
from service.timeaxis import KST, deadline_of

router = APIRouter(prefix="/v1", tags=["runs"])


@router.get("/runs", summary="Run history, newest first")
def list_runs(
    state: StateDep,
    status: Annotated[
        Literal["pending", "waiting_for_inputs", "running", "succeeded", "failed", "late"] | None,
        Query(),
    ] = None,
    from_: Annotated[IsoDate | None, Query(alias="from", description="YYYY-MM-DD")] = None,
    to: Annotated[IsoDate | None, Query(description="YYYY-MM-DD")] = None,
    limit: Annotated[WholeNumber, Query(ge=1, le=500)] = 50,
    offset: Annotated[WholeNumber, Query(ge=0, le=1_000_000)] = 0,
) -> RunList:
    with state.sessions() as s:
        runs, total = repo.list_runs(
            s, status=status, start=from_, end=to, limit=limit, offset=offset
        )
        pubs = {r.target_date: repo.published_run(s, r.target_date) for r in runs}
        items = [RunInfo.of_run(r, p.id if (p := pubs[r.target_date]) else None) for r in runs]
    nxt = offset + limit if offset + limit < total else None
    return RunList(total=total, limit=limit, offset=offset, next_offset=nxt, runs=items)


#: The states of a run that has started or finished; ``latest`` ignores the others (queued,
#: waiting for its inputs), which may never start.
STARTED = (RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.LATE)


@router.get("/runs/latest", summary="The newest run that has started or finished")
def latest_run(state: StateDep) -> RunInfo:
    """The newest attempt of the newest target date with a run that has started or finished.

    A run that is only queued (``pending``) or ``waiting_for_inputs`` has done nothing an
    operator could inspect, and may never start, so it is not the latest; ``/v1/runs``
    lists those too, and ``/v1/status`` says how tomorrow's run stands.
    """
    with state.sessions() as s:
        run = s.scalars(
            select(Run)
            .where(Run.status.in_(STARTED))
            .order_by(Run.target_date.desc(), Run.attempt.desc())
            .limit(1)
        ).first()
        if run is None:
            raise Problem(404, "No run", "no run has started yet; /v1/runs lists queued ones")
        pub = repo.published_run(s, run.target_date)
        return RunInfo.of_run(run, pub.id if pub else None)


@router.get("/runs/{date}", summary="The runs of one target date")
def runs_of_date(date: DatePath, state: StateDep) -> RunsOfDate:
    """The published run of the date (if any) and every attempt, oldest first."""
    day = parse_date(date, state)
    with state.sessions() as s:
        attempts = repo.runs_for_date(s, day)
        if not attempts:
            raise Problem(404, "No run", f"no run for {day}")
        pub = repo.published_run(s, day)
        pid = pub.id if pub else None
        return RunsOfDate(
            target_date=day,
            published_run_id=pid,
            latest=RunInfo.of_run(attempts[-1], pid),
            attempts=[RunInfo.of_run(r, pid) for r in attempts],
        )


@router.get("/status", summary="The monitoring summary")
def status(state: StateDep) -> Status:
    """Tomorrow's run, the last success, lateness against the deadline, the scheduler, 14 days."""
    now = dt.datetime.now(dt.UTC)
    tomorrow = now.astimezone(KST).date() + dt.timedelta(days=1)
    deadline = deadline_of(tomorrow, state.settings.deadline_time_kst)
    repo.recover_interrupted(
        state.sessions, state.settings.run_lease
    )  # a killed worker's run is reported as interrupted
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
                DayStatus(
                    date=d,
                    status=runs[-1].status.value if runs else "none",
                    attempts=len(runs),
                    published=pub is not None,
                    cmaq_fallback=bool(pub and pub.fallback),
                )
            )
        late = t_pub is None and now > deadline
        failed = bool(t_runs) and t_runs[-1].status == RunStatus.FAILED
        return Status(
            now=now.astimezone(KST),
            tomorrow=TomorrowStatus(
                date=tomorrow,
                state=t_runs[-1].status.value if t_runs else "none",
                published=t_pub is not None,
                deadline=deadline,
                late=late,
                failed=failed,
                error=t_runs[-1].error if t_runs else None,
            ),
            last_success=LastSuccess(
                date=last_ok.target_date,
                run_id=last_ok.id,
                published_at=last_ok.finished_at.astimezone(KST) if last_ok.finished_at else None,
                cmaq_fallback=last_ok.fallback,
            )
            if last_ok
            else None,
            scheduler=SchedulerBeat(
                seen_at=beat.seen_at.astimezone(KST),
                age_s=round((now - beat.seen_at).total_seconds(), 1),
                leader=bool(beat.info.get("leader")),
            )
            if beat is not None
            else None,
            last_14_days=days,
            healthy=bool(last_ok) and not late and not failed,
            model_drift=model_drift(s),  # verification: the model's 14 days against CMAQ
        )


@router.post("/runs/{date}", status_code=202, summary="Start or re-run a date (admin)")
def start_run(
    date: DatePath, state: StateDep, authorization: Annotated[str | None, Header()] = None
) -> JSONResponse:
    """Queue a run of ``date``; the scheduler process picks it up at its next tick.

    ``date`` must lie between 2000-01-01 and tomorrow (KST) plus one day
    (:func:`service.api.deps.run_date_refusal`); other dates get 422 and nothing is queued.

    Requires ``Authorization: Bearer <PM25_ADMIN_TOKEN>``; anything else is answered 401
    with ``WWW-Authenticate: Bearer``.
    """
    require_admin(authorization, state.settings)
    day = parse_date(date, state)
    refusal = run_date_refusal(day)
    if refusal is not None:  # before anything is written: no run row for an impossible date
        raise Problem(422, "Date out of range", refusal)
    with transaction(state.sessions) as s:
        runs = repo.runs_for_date(s, day)
        running = bool(runs) and runs[-1].status == RunStatus.RUNNING
        if running:
            run = runs[-1]
        elif runs and runs[-1].status in (RunStatus.PENDING, RunStatus.WAITING):
            run = runs[-1]  # a waiting attempt goes back in the queue: it is retried now
            run.status = RunStatus.PENDING
        else:
            run = repo.new_run(s, day, "api")
            run.status = RunStatus.PENDING
            run.started_at = None
        run_id, run_status = run.id, run.status.value
    present, found = inputs_of(day, state)
    poll = state.settings.queue_poll_seconds
    if running:
        message = "already running; nothing was queued"
    elif present:
        message = f"queued: the scheduler starts it within about {poll} s"
    else:
        message = (
            f"queued, but inputs are missing: the scheduler starts it within about {poll} s and "
            "it then waits for the files, polling, until the deadline"
        )
    body = RunQueued(
        run_id=run_id,
        target_date=day,
        status=run_status,
        message=message,
        inputs_present=present,
        inputs=found,
        starts_within_s=None if running else poll,
        watch=f"/v1/runs/{day}",
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/runs/{day}"}
    )


def inputs_of(day: dt.date, state: AppState) -> tuple[bool, str]:
    """Whether the date's inputs are in the inbox, and which files (or what is missing)."""
    from service.errors import InputFileError
    from service.forecast.tensor import find_input_paths

    try:
        paths = find_input_paths(day, state.settings)
    except InputFileError as exc:
        return False, clip(str(exc), 300)
    return True, f"{len(paths.cmaq)} CMAQ and {len(paths.wrf)} WRF file(s)"
