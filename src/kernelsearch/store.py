"""The run store: one SQLite file per solve run, every attempt written as it happens (a killed run loses nothing)."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .verify.verdict import Status, Timing

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    lane INTEGER NOT NULL,
    step INTEGER NOT NULL,               -- the attempt's number within its lane
    strategy TEXT NOT NULL,
    base_id INTEGER,                     -- the attempt whose code this one was asked to improve
    session INTEGER NOT NULL,            -- 0 for the first run, +1 on every --resume
    started_s REAL NOT NULL,             -- seconds of the run's budget spent when the attempt began
    finished_s REAL,
    started_at TEXT NOT NULL,            -- wall-clock time, ISO 8601 (UTC)
    status TEXT NOT NULL,                -- pending, a verifier status, no_code, llm_error or cancelled
    prompt TEXT NOT NULL,
    reasoning TEXT,
    answer TEXT,
    code TEXT,
    note TEXT,                           -- how the code was extracted, or why there is none
    verdict TEXT,                        -- the verifier's JSON verdict
    speedup_eager REAL,
    speedup_compile REAL,
    candidate_ms REAL,
    prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0,
    reasoning_tokens INTEGER DEFAULT 0,
    llm_s REAL,
    verify_s REAL
);
CREATE TABLE IF NOT EXISTS retimes (
    id INTEGER PRIMARY KEY,
    attempt_id INTEGER NOT NULL,         -- the attempt whose code was verified and timed again (kernelsearch retime)
    at TEXT NOT NULL,                    -- wall-clock time, ISO 8601 (UTC)
    device TEXT NOT NULL,
    sizes TEXT NOT NULL,                 -- original (the problem file's own) or searched (--set / --shrink applied)
    status TEXT NOT NULL,
    speedup_eager REAL,
    speedup_compile REAL,
    candidate_ms REAL,
    verdict TEXT NOT NULL                -- the verifier's JSON verdict
);
"""
ELAPSED = "elapsed_s"  # meta: budget seconds the run has spent, over all its sessions


class StoreError(Exception):
    """A store that cannot be read: not an SQLite file, damaged, or of another schema (CLI exit 2)."""


@dataclass
class Attempt:
    id: int
    lane: int
    step: int
    strategy: str
    base_id: int | None
    session: int
    started_s: float
    finished_s: float | None
    started_at: str
    status: str
    prompt: str
    reasoning: str | None
    answer: str | None
    code: str | None
    note: str | None
    verdict: dict | None
    speedup_eager: float | None
    speedup_compile: float | None
    candidate_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    llm_s: float | None
    verify_s: float | None

    @property
    def correct(self) -> bool:
        return self.status == Status.CORRECT


class RunStore:
    """Writes go through one connection under a lock, each in its own transaction (WAL: readers never block)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.Lock()
        try:
            with self.lock:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA busy_timeout=5000")
                self.db.executescript(SCHEMA)
                self._check()
        except (sqlite3.DatabaseError, StoreError) as e:  # garbage, a truncated file, another program's tables
            self.db.close()
            raise StoreError(f"{self.path} is damaged or not a kernelsearch store ({e})") from None

    def _check(self) -> None:
        problems = [r[0] for r in self.db.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
        if problems:
            raise StoreError(problems[0])
        columns = {r["name"] for r in self.db.execute("PRAGMA table_info(attempts)")}
        missing = [name for name in Attempt.__dataclass_fields__ if name not in columns]
        if missing:
            raise StoreError(f"its attempts table has no column {missing[0]}")

    # ---- meta ------------------------------------------------------------------------------------------------
    def set_meta(self, key: str, value) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    # ---- attempts --------------------------------------------------------------------------------------------
    def begin(self, *, lane: int, step: int, strategy: str, base_id: int | None, session: int, started_s: float,
              prompt: str) -> int:
        with self.lock:
            cursor = self.db.execute(
                "INSERT INTO attempts (lane, step, strategy, base_id, session, started_s, started_at, status, prompt)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (lane, step, strategy, base_id, session, started_s, _now(), Status.PENDING, prompt))
            self._spent(started_s)
            return cursor.lastrowid

    def update(self, attempt_id: int, **fields) -> None:
        if "verdict" in fields and fields["verdict"] is not None:
            fields["verdict"] = json.dumps(fields["verdict"])
        names = ", ".join(f"{k} = ?" for k in fields)
        with self.lock:
            self.db.execute(f"UPDATE attempts SET {names} WHERE id = ?", (*fields.values(), attempt_id))
            if fields.get("finished_s") is not None:
                self._spent(fields["finished_s"])

    def _spent(self, budget_s: float) -> None:
        """The budget spent is at least what any attempt has recorded, whatever its outcome (an answer without
        code, a failed call): a killed run resumes with it spent (under the caller's lock)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (ELAPSED,)).fetchone()
        if row is None or json.loads(row["value"]) < budget_s:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ELAPSED, json.dumps(budget_s)))

    def abandon_pending(self) -> int:
        """Attempts a killed run left unfinished become `cancelled` (their prompts stay on record)."""
        with self.lock:
            return self.db.execute("UPDATE attempts SET status = ? WHERE status = ?",
                                   (Status.CANCELLED, Status.PENDING)).rowcount

    def attempts(self) -> list[Attempt]:
        rows = self.db.execute("SELECT * FROM attempts ORDER BY id").fetchall()
        return [Attempt(**{**dict(r), "verdict": json.loads(r["verdict"]) if r["verdict"] else None}) for r in rows]

    def kernels(self) -> list[sqlite3.Row]:
        """(id, lane, strategy, status, code) of every attempt that has code: what steering reads before each
        attempt, without the prompts, answers and verdicts (tens of kB an attempt) that attempts() loads."""
        return self.db.execute("SELECT id, lane, strategy, status, code FROM attempts WHERE code IS NOT NULL "
                               "ORDER BY id").fetchall()

    # ---- re-timing (kernelsearch retime) -------------------------------------------------------------------
    def record_retime(self, attempt_id: int, device: str, sizes: str, verdict: dict) -> None:
        row = {"attempt_id": attempt_id, "at": _now(), "device": device, "sizes": sizes, "status": verdict["status"],
               **timing_columns(Timing.of(verdict.get("timing"))), "verdict": json.dumps(verdict)}
        with self.lock:
            self.db.execute(f"INSERT INTO retimes ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            tuple(row.values()))

    def retimes(self) -> list[dict]:
        rows = self.db.execute("SELECT * FROM retimes ORDER BY id").fetchall()
        return [{**dict(r), "verdict": json.loads(r["verdict"])} for r in rows]

    def close(self) -> None:
        with self.lock:
            self.db.close()


def timing_columns(timing: Timing | None) -> dict:
    """A verdict's timing as the three columns attempts and retimes keep of it (None where nothing was timed)."""
    return {"speedup_eager": timing and timing.speedup("eager"),
            "speedup_compile": timing and timing.speedup("compile"), "candidate_ms": timing and timing.candidate_ms}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
