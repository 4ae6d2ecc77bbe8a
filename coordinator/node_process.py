"""Which process a node's ``node.pid`` names, confirmed before anyone signals it.

A pid file is only a hint: the node may have died long ago and its PID been handed to an
unrelated process (``mpc-ceremony down`` once killed such a process). So ``up`` records,
with the PID, the process's start time (field 22 of ``/proc/PID/stat``, clock ticks since
boot) and the node's config file; before a signal, the process with that PID must have
started at that very time and its command line must run a node daemon on that config. A
recycled PID fails the first check, a foreign process the second. Linux only (``/proc``):
where no process can be confirmed, none is signalled.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mpcnode.state.atomic_file import PUBLIC, write_atomic

NODE_MODULES = ("mpcnode", "test_only.node_daemon")
"""``python -m MODULE serve --config node.toml``: the daemons ``up`` starts."""


class Status(enum.Enum):
    RUNNING = "running"  # the node's own process, confirmed
    GONE = "gone"  # no such process (or a zombie): the pid file is stale
    FOREIGN = "foreign"  # a live process that is not this node's: never signalled


@dataclass(frozen=True)
class PidRecord:
    """What ``up`` writes to ``node.pid``."""

    pid: int
    start_ticks: int | None  # None: a pid file from before start times were recorded
    config: Path


@dataclass(frozen=True)
class Check:
    status: Status
    why: str  # one line, for the operator


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot; None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    return None if fields[0] in ("Z", "X") else int(fields[19])


def command_line(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def runs_node(argv: list[str], config: Path) -> bool:
    """Whether ``argv`` is ``PYTHON -m NODE_MODULE serve --config CONFIG``."""
    if len(argv) != 6 or (argv[1], argv[3], argv[4]) != ("-m", "serve", "--config"):
        return False
    return argv[2] in NODE_MODULES and Path(argv[5]) == config.resolve()


def record(pid: int, config: Path) -> PidRecord:
    """The record of a process just started on ``config`` (absolute, as in its argv)."""
    return PidRecord(pid, start_ticks(pid), config.resolve())


def write(path: Path, rec: PidRecord) -> None:
    body = {"pid": rec.pid, "start_ticks": rec.start_ticks, "config": str(rec.config)}
    write_atomic(path, (json.dumps(body) + "\n").encode(), PUBLIC)


def read(path: Path, config: Path) -> PidRecord | None:
    """The record in ``path``; a bare PID (the old format) has no start time. None when
    the file is missing or unreadable: then there is nothing to signal."""
    try:
        text = path.read_text().strip()
        if text.isdigit():
            return PidRecord(int(text), None, config.resolve())
        body = json.loads(text)
        return PidRecord(int(body["pid"]), body["start_ticks"], Path(body["config"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check(rec: PidRecord, config: Path) -> Check:
    """Whether ``rec`` names the live process of the node whose config is ``config``."""
    _reap(rec.pid)
    ticks = start_ticks(rec.pid)
    if ticks is None:
        return Check(Status.GONE, f"pid {rec.pid} is not running")
    argv = command_line(rec.pid) or []
    shown = " ".join(argv)[:80] or "?"
    if rec.start_ticks is not None and ticks != rec.start_ticks:
        return Check(Status.FOREIGN, f"pid {rec.pid} was reused: it started after the node "
                                     f"({shown!r})")
    if rec.config != config.resolve() or not runs_node(argv, config):
        return Check(Status.FOREIGN, f"pid {rec.pid} is not this node's process ({shown!r})")
    return Check(Status.RUNNING, f"pid {rec.pid}")


def _reap(pid: int) -> None:
    # A node started by this very process (``up`` then ``down`` in one process) stays a
    # zombie until we reap it; a process that is not our child is its parent's to reap.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(nodes: Mapping[int, PidRecord], configs: Mapping[int, Path], timeout: float,
         say: Callable[[str], None]) -> None:
    """SIGTERM every confirmed node at once, wait up to ``timeout`` seconds for all of them,
    then SIGKILL the survivors (confirmed again: the PID may have been reused meanwhile).
    One line per node."""
    t0 = time.monotonic()
    for rec in nodes.values():
        _signal(rec.pid, signal.SIGTERM)
    waiting = dict(nodes)
    while waiting and time.monotonic() - t0 < timeout:
        for i in [i for i, rec in waiting.items() if _gone(rec, configs[i])]:
            del waiting[i]
            say(f"node {i}: stopped (pid {nodes[i].pid}, {time.monotonic() - t0:.1f} s)")
        time.sleep(0.05)
    for i, rec in waiting.items():
        if not _gone(rec, configs[i]):
            _signal(rec.pid, signal.SIGKILL)
            say(f"node {i}: killed (pid {rec.pid} ignored SIGTERM for {timeout:.0f} s)")
        else:
            say(f"node {i}: stopped (pid {rec.pid})")


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited since it was confirmed
        os.kill(pid, sig)


def _gone(rec: PidRecord, config: Path) -> bool:
    return check(rec, config).status is not Status.RUNNING
