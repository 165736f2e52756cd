"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where a worker's CPU time goes.

    .venv/bin/python bench/profile_summary.py bench/results/<stamp>_profile_list.txt [--top 25]

Prints (1) the share of on-CPU samples by the innermost frame's package (asyncpg, sqlalchemy,
litestar, ...; "Runner.run" on top means C code under uvloop: libuv, httptools, asyncpg's protocol),
(2) inclusive time of well-known steps (guard, dependency resolution, pool checkout and pre-ping,
execute, commit, close, serialisation), and (3) the functions with the most self time.
py-spy records only on-CPU samples by default, so percentages are of the worker's busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")

# Inclusive time of these frames (substring of "func (file") anywhere on the stack.
MARKERS = [
    ("owner guard (token verify + path check)", "guard (backend/auth.py"),
    ("  of which jwt.decode", "PyJWT.decode (jwt/"),
    ("Litestar dependency resolution (db_session, tasks)", "KwargsModel.resolve_dependencies (litestar/"),
    ("  AA provide_session (session creation)", "provide_session (advanced_alchemy/"),
    (
        "  TaskService/repository construction",
        "SQLAlchemyAsyncRepositoryReadService.__init__ (advanced_alchemy/",
    ),
    ("request body decode (StrictMsgspecDTO)", "StrictMsgspecDTO.decode_bytes (backend/http/dto.py"),
    ("TaskService.list_tasks", "list_tasks (backend/tasks/service.py"),
    ("TaskService.add_task", "add_task (backend/tasks/service.py"),
    ("session's connection (one greenlet hop)", "DriverRepository._connection (backend/sql.py"),
    ("statement on asyncpg", "DriverRepository._run (backend/sql.py"),
    ("AsyncSession.execute", "AsyncSession.execute (sqlalchemy/ext/asyncio/"),
    ("  pool checkout (incl. pre-ping)", "_ConnectionFairy._checkout (sqlalchemy/pool/"),
    ("  pool pre-ping (BEGIN; ; ROLLBACK)", "_async_ping (sqlalchemy/dialects/postgresql/asyncpg.py"),
    ("  statement compile / cache key", "_compile_w_cache (sqlalchemy/"),
    ("  rows -> Row objects", "_allrows (sqlalchemy/engine/result.py"),
    ("Session.commit", "Session.commit (sqlalchemy/orm/session.py"),
    ("AA after_commit listeners", "(advanced_alchemy/_listeners.py"),
    ("AsyncSession.close (rollback + return to pool)", "AsyncSession.close (sqlalchemy/ext/asyncio/"),
    ("AA before_send handler", "default_handler_maker.<locals>.handler (advanced_alchemy/"),
    ("greenlet_spawn (sync<->async bridge)", "greenlet_spawn (sqlalchemy/"),
    ("paging headers", "page_headers (backend/http/paging.py"),
    ("response encode (msgspec)", "encode_json (litestar/serialization/"),
]


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "python3.11/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file})"


def area(frame: str) -> str:
    m = FRAME.match(frame)
    file = m.group("file") if m else frame
    if frame.startswith("Runner.run (asyncio/runners.py"):
        return "C code under the event loop (uvloop, httptools, asyncpg protocol)"
    if "/" not in file:
        return "stdlib (top-level modules)"
    top = file.split("/", 1)[0]
    return "backend (app code)" if top == "backend" else top


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--rate", type=float, default=200, help="py-spy sampling rate used")
    p.add_argument("--seconds", type=float, default=0, help="recording length, to estimate CPU use")
    args = p.parse_args()
    stacks = parse(args.profile)
    total = sum(c for _, c in stacks)
    busy = stacks  # py-spy records only on-CPU samples unless --idle is given
    busy_total = total or 1
    line = f"{args.profile.name}: {total} on-CPU samples"
    if args.seconds:
        line += f" ≈ {100 * total / (args.rate * args.seconds):.0f}% of one core over {args.seconds:g} s"
    print(line)

    print("\nBusy time by innermost package:")
    areas: Counter[str] = Counter()
    for s, c in busy:
        areas[area(s[-1])] += c
    for name, c in areas.most_common():
        print(f"  {100 * c / busy_total:5.1f}%  {name}")

    print("\nInclusive (share of busy samples with this frame on the stack):")
    for label, needle in MARKERS:
        c = sum(cnt for s, cnt in busy if any(needle in f for f in s))
        if c:
            print(f"  {100 * c / busy_total:5.1f}%  {label}")

    print(f"\nTop {args.top} self frames:")
    selfs: Counter[str] = Counter()
    for s, c in busy:
        selfs[short(s[-1])] += c
    for frame, c in selfs.most_common(args.top):
        print(f"  {100 * c / busy_total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
