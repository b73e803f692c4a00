"""The shared backfill plan: planning, claiming under a lease, progress, completion, recovery.

The SQL lives in sql/20_backfill.sql; these are thin calls of it (sql/queries/tasks.sql). Worker identities are
`host/pid/wN`, so a process can recognise leases held by dead processes on its own host and take them back at once
instead of waiting for them to expire.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.range import Range

from deribit_ts.db.queries import query
from deribit_ts.exchange.client import Tally
from deribit_ts.processes import process_alive

LEASE = timedelta(seconds=60)
# Who works which tasks, by priority (lower runs first): backfill runs their own (priorities >= 1), the collector its
# own (negative: deribit_ts/collect/budget.py). Every claim names its range, so neither takes the other's tasks.
BACKFILL_PRIORITIES = (1, 2**31 - 1)
COLLECTOR_PRIORITIES = (-(2**31), -1)
HOST = socket.gethostname()


@dataclass
class Task:
    task_id: int
    dataset: str
    key: str
    range_start: datetime
    range_end: datetime
    priority: int
    state: str
    cursor: datetime | None
    lease_owner: str | None
    lease_expires: datetime | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    due: datetime | None = None  # the key's expiry: orders tasks within one priority (migration 0013)

    @property
    def resume_from(self) -> datetime:
        return self.cursor or self.range_start


def worker_id(n: int) -> str:
    return f"{HOST}/{os.getpid()}/w{n}"


async def plan(
    conn: AsyncConnection,
    dataset: str,
    key: str,
    start: datetime,
    end: datetime,
    chunk: timedelta,
    priority: int,
    due: datetime | None = None,
) -> int:
    if start >= end:
        return 0
    cur = await conn.execute(
        query("tasks", "plan"),
        {"dataset": dataset, "key": key, "start": start, "end": end, "chunk": chunk, "priority": priority, "due": due},
    )
    return (await cur.fetchone())[0]


Within = dict[str, tuple[datetime | None, datetime | None]]  # per dataset, [from, until) (None: unbounded)


def _within(datasets: list[str], within: Within | None) -> list[tuple] | None:
    """The per-dataset ranges in the order of `datasets` (a dataset not named: unbounded)."""
    if within is None:
        return None
    return [Range(*within.get(d, (None, None)), "[)") for d in datasets]


async def claim(
    conn: AsyncConnection,
    owner: str,
    datasets: list[str],
    keys: list[str] | None,
    priorities: tuple[int, int] = BACKFILL_PRIORITIES,
    within: Within | None = None,
) -> Task | None:
    """The next task of `datasets` (and `keys`, None: any) whose priority is in `priorities` (inclusive) and, with
    `within`, whose unfinished part lies inside its dataset's range."""
    async with conn.cursor(row_factory=class_row(Task)) as cur:
        await cur.execute(
            query("tasks", "claim"),
            {
                "owner": owner,
                "lease": LEASE,
                "datasets": datasets,
                "keys": keys,
                "lowest": priorities[0],
                "highest": priorities[1],
                "within": _within(datasets, within),
            },
        )
        return await cur.fetchone()


async def progress(
    conn: AsyncConnection,
    task: Task,
    owner: str,
    run_id: int,
    start: datetime,
    end: datetime,
    final_until: datetime,
    rows: int,
    inserted: int,
    revised: int,
    tally: Tally,
    filled: list[tuple[datetime, datetime]] | None = None,
) -> bool:
    """Record one committed window; `filled` = [from, until) runs of filler minutes not stored as rows."""
    cur = await conn.execute(
        query("tasks", "progress"),
        {
            "task_id": task.task_id,
            "owner": owner,
            "lease": LEASE,
            "run_id": run_id,
            "start": start,
            "end": end,
            "final_until": final_until,
            "rows": rows,
            "inserted": inserted,
            "revised": revised,
            "requests": tally.requests,
            "retries": tally.retries,
            "filled_from": [a for a, _ in filled or []],
            "filled_until": [b for _, b in filled or []],
        },
    )
    return (await cur.fetchone())[0]


async def finish(
    conn: AsyncConnection, task: Task, owner: str, run_id: int, error: str | None, duration: timedelta
) -> None:
    await conn.execute(
        query("tasks", "finish"),
        {"task_id": task.task_id, "owner": owner, "run_id": run_id, "error": error, "duration": duration},
    )


async def release(conn: AsyncConnection, owners: list[str]) -> int:
    cur = await conn.execute(query("tasks", "release"), {"owners": owners})
    return (await cur.fetchone())[0]


async def recover_dead_local_workers(conn: AsyncConnection) -> int:
    """Release tasks leased by processes of this host that no longer exist (e.g. after kill -9),
    and mark their runs interrupted. Returns the number of tasks released."""
    cur = await conn.execute(query("tasks", "running_owners"), {"prefix": f"{HOST}/%"})
    dead_owners = [owner for (owner,) in await cur.fetchall() if not process_alive(int(owner.split("/")[1]))]
    cur = await conn.execute(query("tasks", "running_runs"), {"host": HOST})
    dead_pids = [pid for (pid,) in await cur.fetchall() if pid and not process_alive(pid)]
    if dead_pids:
        await conn.execute(query("tasks", "runs_interrupted"), {"host": HOST, "pids": dead_pids})
    return await release(conn, dead_owners) if dead_owners else 0


async def live_local_runs(conn: AsyncConnection) -> int:
    """Processes on this host with a run in progress that are alive (this one included once its run is logged).
    Processes, not runs: a collector whose database went away while it led could not close that leadership's run,
    and leads again in a new one; counted twice, it would halve its own share of the allowance for good."""
    cur = await conn.execute(query("tasks", "running_runs"), {"host": HOST})
    return len({pid for (pid,) in await cur.fetchall() if pid and process_alive(pid)})


async def unfinished(
    conn: AsyncConnection,
    datasets: list[str],
    keys: list[str] | None,
    priorities: tuple[int, int] = BACKFILL_PRIORITIES,
    within: Within | None = None,
) -> int:
    """Unfinished tasks a claim with the same arguments could take (now, or once their lease ends)."""
    cur = await conn.execute(
        query("tasks", "open_tasks"),
        {
            "datasets": datasets,
            "keys": keys,
            "lowest": priorities[0],
            "highest": priorities[1],
            "within": _within(datasets, within),
        },
    )
    return (await cur.fetchone())[0]


async def left_for_resume(conn: AsyncConnection) -> int:
    """Unfinished backfill tasks of every plan (resumed by `deribit-ts backfill resume`)."""
    lowest, highest = BACKFILL_PRIORITIES
    cur = await conn.execute(query("tasks", "left_for_resume"), {"lowest": lowest, "highest": highest})
    return (await cur.fetchone())[0]
