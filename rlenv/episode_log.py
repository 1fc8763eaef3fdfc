"""A crash-safe, resumable JSONL of finished episodes (``rlenv eval`` and ``rlenv collect``).

A long run that is killed (SIGKILL, a preempted node, a full disk) loses nothing it finished:

- each episode is appended as one whole line (one ``write`` on a file opened for appending)
  as soon as it ends, and flushed to the kernel at once, so a killed process leaves every
  finished episode on disk; ``fsync`` runs at most once a second and at the end, so a power
  loss costs at most the last second;
- the run's settings sit beside the file (``FILE.run.json``, written atomically), and
  episodes played but not kept (``rlenv collect --keep passed``) are listed in
  ``FILE.skipped``, so a resumed run knows every episode already played;
- ``resume=True`` reads the file back, drops a torn last line (a write the kill cut short; the
  caller tells the user), refuses settings that differ from the stored ones (naming each
  difference), and leaves to play exactly the episodes not yet played, each at its position in
  the whole run, so it samples with the seeds an unbroken run would have given it;
- at the end the file is rewritten in the run's order (a temporary file renamed over it), so a
  resumed run's file is the file an unbroken run writes;
- an episode that never started because its served env failed at reset
  (``stop_reason="reset_failed"``: the server was down, not the policy's doing) counts as not
  played: a resumed run plays it again, and its old line goes when the first episode of the
  resumed run is written.

An episode is identified by its environment, its task (the seed that poses it, or its task id)
and its sample index in the task's group.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlenv.errors import RLEnvError
from rlenv.rollout.collector import EpisodeSpec
from rlenv.rollout.trajectory import Trajectory

__all__ = ["EpisodeLog", "ResumeError", "episode_key"]

_FORMAT = 1


class ResumeError(RLEnvError, ValueError):
    """The output cannot be written or resumed as asked (it exists, its settings differ, or it
    is damaged beyond its last line). The message says what to do."""


def episode_key(spec: EpisodeSpec) -> tuple:
    """What identifies an episode across runs: environment, task (seed or task id), sample."""
    if spec.seed is not None:
        return (spec.env_id, "seed", spec.seed, spec.group)
    return (spec.env_id, "task", spec.task_id, spec.group)


def _trajectory_keys(trajectory: Trajectory) -> tuple[tuple, tuple]:
    return (
        (trajectory.env_id, "seed", trajectory.seed, trajectory.group),
        (trajectory.env_id, "task", trajectory.task_id, trajectory.group),
    )


def _failed_key(record: Any) -> bool:
    """A ``FILE.skipped`` line of an episode whose served env failed at reset."""
    return isinstance(record, dict) and record.get("reset_failed") is True


def _settings_diff(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    names = sorted(set(stored) | set(now))
    return [
        f"{name} {json.dumps(stored.get(name))} -> {json.dumps(now.get(name))}"
        for name in names
        if stored.get(name) != now.get(name)
    ]


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds either its old content or ``data``, never a mix, even after a crash."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def _read_lines(path: Path) -> tuple[list[Any], str | None]:
    """The JSON lines of ``path`` and a note when a torn last line was cut off the file.

    Only the last line can be torn by a kill (appends are sequential); a bad line before it is
    damage this module did not make, and raises."""
    if not path.exists():
        return [], None
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: b"" when the file ends whole
    records: list[Any] = []
    good = 0  # bytes of whole, valid lines
    torn = tail if tail else None
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line) if line.strip() else None)
        except ValueError:
            if number == len(lines) and not tail:  # the last line: written whole, then cut
                torn = line
                break
            raise ResumeError(
                f"{path}:{number}: not a JSON line, and not the last line (which a kill can "
                "tear): the file was changed by something else; fix or remove that line, or "
                "pass --force to start over"
            ) from None
        good += len(line) + 1
    if torn is None:
        return [record for record in records if record is not None], None
    with path.open("r+b") as handle:
        handle.truncate(good)
        handle.flush()
        os.fsync(handle.fileno())
    note = f"{path}: dropped a torn last line ({len(torn)} bytes, cut short by the kill)"
    return [record for record in records if record is not None], note


class _Appender:
    """One file opened for appending whole lines; fsync at most every ``interval`` seconds."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.interval = interval
        self.synced = time.monotonic()

    def append(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        while data:  # one write on a regular file; loop only if the kernel wrote part
            data = data[os.write(self.fd, data) :]
        if time.monotonic() - self.synced >= self.interval:
            self.sync()

    def sync(self) -> None:
        os.fsync(self.fd)
        self.synced = time.monotonic()

    def close(self) -> None:
        if self.fd >= 0:
            self.sync()
            os.close(self.fd)
            self.fd = -1


class EpisodeLog:
    """The trajectories file of a run, written episode by episode and resumable.

    Open it with the run's ``settings`` (what must not change between a run and its resume:
    environment, kwargs, model, seed, counts, sampling) and ``specs`` (every episode of the
    run, in order); play :attr:`remaining` (``(position, spec)`` pairs) and :meth:`record`
    each trajectory as it ends; :meth:`finish` rewrites the file in the run's order and
    returns every trajectory kept. Without ``resume`` or ``force`` an existing output raises
    :class:`ResumeError` rather than being overwritten.
    """

    def __init__(
        self,
        path: str | Path,
        settings: dict[str, Any],
        specs: Sequence[EpisodeSpec],
        *,
        resume: bool = False,
        force: bool = False,
        sync_interval: float = 1.0,
    ) -> None:
        if resume and force:
            raise ResumeError("--resume continues the run in the output, --force starts over: "
                              "pass one of them")  # fmt: skip
        self.path = Path(path)
        self.settings_path = self.path.with_name(self.path.name + ".run.json")
        self.skipped_path = self.path.with_name(self.path.name + ".skipped")
        self.specs = list(specs)
        self.notes: list[str] = []
        """What the caller should tell the user (a torn line dropped, nothing to resume)."""
        self.settings = {"format": _FORMAT, **json.loads(json.dumps(settings, default=str))}
        positions = {episode_key(spec): i for i, spec in enumerate(self.specs)}
        if len(positions) != len(self.specs):
            raise ValueError("specs name the same episode twice")
        self._positions = positions
        existing = [p for p in (self.path, self.settings_path, self.skipped_path) if p.exists()]
        self._played: dict[int, bool] = {}  # position -> kept
        self._failed: set[int] = set()  # episodes whose env failed at reset: played again
        if existing and resume:
            self._load()
        elif existing and not force:
            raise ResumeError(
                f"{self.path} exists: pass --resume to finish that run (same settings), or "
                "--force to overwrite it"
            )
        elif resume:
            self.notes.append(f"{self.path}: nothing to resume, starting the run")
        self._fresh = not (existing and resume)
        self._kept: _Appender | None = None
        self._skipped: _Appender | None = None
        self._sync_interval = sync_interval

    def _begin(self) -> None:
        """Create the files when the first episode ends (not before: a run that fails to
        start, e.g. its model does not load, leaves any earlier output as it was)."""
        if self._kept is not None:
            return
        if self._fresh:
            for stale in (self.path, self.skipped_path):
                stale.unlink(missing_ok=True)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(
                self.settings_path, (json.dumps(self.settings, indent=1) + "\n").encode()
            )
        elif self._failed:  # drop the reset failures that this run plays again
            records, _ = _read_lines(self.path)
            trajectories = map(Trajectory.model_validate, records)
            lines = [t.to_json() for t in trajectories if t.stop_reason != "reset_failed"]
            _write_atomically(self.path, "".join(line + "\n" for line in lines).encode())
            if self.skipped_path.exists():
                skipped, _ = _read_lines(self.skipped_path)
                lines = [json.dumps(r) for r in skipped if not _failed_key(r)]
                _write_atomically(self.skipped_path, "".join(f"{x}\n" for x in lines).encode())
        self._kept = _Appender(self.path, self._sync_interval)

    def _load(self) -> None:
        if not self.settings_path.exists():
            raise ResumeError(
                f"{self.path} has no {self.settings_path.name} beside it (written by an older "
                "rlenv, or by another tool), so its settings cannot be checked: pass --force "
                "to start over"
            )
        stored = json.loads(self.settings_path.read_text(encoding="utf-8"))
        differences = _settings_diff(stored, self.settings)
        if differences:
            raise ResumeError(
                f"--resume with settings that differ from {self.settings_path}'s: "
                + "; ".join(differences)
                + ". Rerun with the stored settings, or pass --force to start over"
            )
        records, note = _read_lines(self.path)
        if note:
            self.notes.append(note)
        for number, record in enumerate(records, start=1):
            try:
                trajectory = Trajectory.model_validate(record)
            except ValueError as error:
                raise ResumeError(f"{self.path}:{number}: not a trajectory: {error}") from None
            failed = trajectory.stop_reason == "reset_failed"
            self._mark(self._position_of(trajectory, number), True, number, failed=failed)
        skipped, note = _read_lines(self.skipped_path)
        if note:
            self.notes.append(note)
        for number, record in enumerate(skipped, start=1):
            key = tuple(record["key"]) if isinstance(record, dict) else None
            if key not in self._positions:
                raise ResumeError(f"{self.skipped_path}:{number}: not an episode of this run")
            self._mark(
                self._positions[key], False, number, self.skipped_path, failed=_failed_key(record)
            )
        if self._failed:
            self.notes.append(
                f"{self.path}: {len(self._failed)} episode(s) whose served env failed at reset "
                "are played again"
            )

    def _position_of(self, trajectory: Trajectory, number: int) -> int:
        for key in _trajectory_keys(trajectory):
            if key in self._positions:
                return self._positions[key]
        raise ResumeError(
            f"{self.path}:{number}: episode {trajectory.env_id} seed={trajectory.seed} "
            f"task={trajectory.task_id} sample={trajectory.group} is not one of this run's"
        )

    def _mark(
        self,
        position: int,
        kept: bool,
        number: int,
        path: Path | None = None,
        *,
        failed: bool = False,
    ) -> None:
        """Record a stored episode as played (``kept`` or skipped), or, ``failed`` (its env
        failed at reset), as one to play again."""
        if position in self._played or position in self._failed:
            raise ResumeError(
                f"{path or self.path}:{number}: episode {episode_key(self.specs[position])} "
                "is recorded twice; remove one, or pass --force to start over"
            )
        if failed:
            self._failed.add(position)
        else:
            self._played[position] = kept

    @property
    def remaining(self) -> list[tuple[int, EpisodeSpec]]:
        """The episodes still to play, as ``(position in the run, spec)``, in run order."""
        return [(i, spec) for i, spec in enumerate(self.specs) if i not in self._played]

    @property
    def played(self) -> int:
        """Episodes already played (by earlier runs, and by this one so far)."""
        return len(self._played)

    def record(self, trajectory: Trajectory, *, keep: bool = True) -> None:
        """Append a finished episode: its line to the file when kept, its key to
        ``FILE.skipped`` otherwise. Flushed to the kernel before this returns."""
        position = self._position_of(trajectory, 0)
        if position in self._played:
            raise ValueError(f"episode {episode_key(self.specs[position])} recorded twice")
        self._begin()
        assert self._kept is not None
        if keep:
            self._kept.append(trajectory.to_json())
        else:
            if self._skipped is None:
                self._skipped = _Appender(self.skipped_path, self._sync_interval)
            key = list(episode_key(self.specs[position]))
            line = {"key": key, "task_id": trajectory.task_id}
            if trajectory.stop_reason == "reset_failed":
                line["reset_failed"] = True  # played again by a resumed run
            self._skipped.append(json.dumps(line))
        self._played[position] = keep

    def close(self) -> None:
        """Sync and close the files (:meth:`finish` does it too)."""
        if self._kept is not None:
            self._kept.close()
        if self._skipped is not None:
            self._skipped.close()

    def finish(self) -> list[Trajectory]:
        """Close, then rewrite the file in the run's order (atomically) and return its
        trajectories: a resumed run's file is then the file of an unbroken run."""
        self._begin()
        self.close()
        records, _ = _read_lines(self.path)
        trajectories = [Trajectory.model_validate(record) for record in records]
        trajectories.sort(key=lambda t: self._position_of(t, 0))
        _write_atomically(self.path, "".join(t.to_json() + "\n" for t in trajectories).encode())
        return trajectories

    def played_tasks(self) -> list[tuple[str, str | None, bool]]:
        """``(env_id, task_id, kept)`` of every played episode in run order, for coverage
        tables (task ids of skipped episodes come from ``FILE.skipped``)."""
        rows: dict[int, tuple[str, str | None, bool]] = {}
        for record in _read_lines(self.path)[0]:
            trajectory = Trajectory.model_validate(record)
            rows[self._position_of(trajectory, 0)] = (trajectory.env_id, trajectory.task_id, True)
        for record in _read_lines(self.skipped_path)[0]:
            position = self._positions[tuple(record["key"])]
            rows[position] = (self.specs[position].env_id, record.get("task_id"), False)
        return [rows[position] for position in sorted(rows)]
