"""``mpc-ceremony down`` signals only the process a pid file really names: real processes
stand in for what an operator's machine holds after a reboot or a crash (an unrelated
process under the node's old PID, a recycled PID, a stale file, a node that ignores
SIGTERM)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator import node_process
from testing.cluster_harness import free_port_base

FAKE_NODE = """import signal, sys, time
def note_and_ignore(*_):  # when SIGTERM came, then carry on
    with open(sys.argv[0] + ".term", "w") as f:
        f.write(repr(time.time()))
if "ignore-term" in open(sys.argv[0] + ".mode").read():
    signal.signal(signal.SIGTERM, note_and_ignore)
open(sys.argv[0] + ".ready", "w").close()
time.sleep(300)
"""


def run(*argv: str | Path | float) -> tuple[int, str]:
    """``mpc-ceremony argv…`` in a process of its own, as an operator runs it (the
    processes a test signals are then not its children): (exit code, stderr)."""
    r = subprocess.run([sys.executable, "-m", "coordinator.ceremony_cli",
                        *(str(a) for a in argv)],
                       capture_output=True, text=True, timeout=120, check=False)
    return r.returncode, r.stderr


def alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    root = tmp_path / "cluster"
    base = free_port_base(3)
    code, err = run("init", "--nodes", 3, "--threshold", 2, "--out", root,
                    "--base-port", base, "--metrics-base-port", base + 1000)
    assert code == 0, err
    return root


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is left is killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if alive(p):
            p.kill()
        p.wait()


def sleeper(spawn: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    spawn.append(subprocess.Popen(["sleep", "300"]))
    return spawn[-1]


def fake_node(spawn: list[subprocess.Popen[bytes]], tmp_path: Path, config: Path,
              mode: str = "") -> subprocess.Popen[bytes]:
    """A process whose command line is exactly a node's (``python -m mpcnode serve
    --config CONFIG``) but which only sleeps: a package named ``mpcnode`` first on its path."""
    package = tmp_path / f"fake{len(spawn)}" / "mpcnode"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_NODE)
    (package / "__main__.py.mode").write_text(mode)
    env = {**os.environ, "PYTHONPATH": str(package.parent)}
    spawn.append(subprocess.Popen(
        [sys.executable, "-m", "mpcnode", "serve", "--config", str(config.resolve())],
        cwd=package.parent, env=env))
    deadline = time.monotonic() + 30  # until it has set its signal handling
    while not (package / "__main__.py.ready").exists():
        assert time.monotonic() < deadline and alive(spawn[-1])
        time.sleep(0.05)
    return spawn[-1]


def pidfile(root: Path, i: int) -> Path:
    return root / f"node{i}" / "node.pid"


def config(root: Path, i: int) -> Path:
    return root / f"node{i}" / "node.toml"


def test_down_leaves_unrelated_processes_alone(cluster: Path,
                                               spawn: list[subprocess.Popen[bytes]]) -> None:
    bare, recorded = sleeper(spawn), sleeper(spawn)
    pidfile(cluster, 1).write_text(f"{bare.pid}\n")  # the old format: a bare PID
    node_process.write(pidfile(cluster, 2), node_process.record(recorded.pid,
                                                                config(cluster, 2)))
    code, err = run("down", cluster)
    assert code == 0, err
    assert alive(bare) and alive(recorded)
    lines = err.splitlines()
    assert lines == [
        f"node 1: pid {bare.pid} is not this node's process ('sleep 300'): left alone, "
        f"{pidfile(cluster, 1)} removed",
        f"node 2: pid {recorded.pid} is not this node's process ('sleep 300'): left alone, "
        f"{pidfile(cluster, 2)} removed"]
    assert not pidfile(cluster, 1).exists() and not pidfile(cluster, 2).exists()


def test_a_process_that_only_names_the_nodes_config_is_left_alone(
        cluster: Path, spawn: list[subprocess.Popen[bytes]]) -> None:
    """Pid files with the right start time, naming processes whose command lines hold the
    node's config path, even the node's whole command line, as mere arguments (an
    operator's ``tail -f``, a script that sleeps): neither is a node, neither is signalled."""
    conf1, conf2 = config(cluster, 1).resolve(), config(cluster, 2).resolve()
    spawn.append(subprocess.Popen(["tail", "-f", str(conf1)], stdout=subprocess.DEVNULL))
    spawn.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)",
                                   "-m", "mpcnode", "serve", "--config", str(conf2)]))
    tail, mimic = spawn
    node_process.write(pidfile(cluster, 1), node_process.record(tail.pid, conf1))
    node_process.write(pidfile(cluster, 2), node_process.record(mimic.pid, conf2))
    code, err = run("down", cluster)
    assert code == 0, err
    assert alive(tail) and alive(mimic), err
    for proc in (tail, mimic):
        assert f"pid {proc.pid} is not this node's process" in err, err


def test_a_pid_file_of_another_node_is_not_this_node(cluster: Path, tmp_path: Path,
                                                     spawn: list[subprocess.Popen[bytes]]
                                                     ) -> None:
    other = fake_node(spawn, tmp_path, config(cluster, 2))
    node_process.write(pidfile(cluster, 1), node_process.record(other.pid, config(cluster, 2)))
    pidfile(cluster, 3).write_text(f"{other.pid}\n")
    code, err = run("down", cluster)
    assert code == 0 and alive(other), err
    assert err.count(f"pid {other.pid} is not this node's process") == 2, err


def test_a_reused_pid_is_detected_by_its_start_time(cluster: Path, tmp_path: Path,
                                                    spawn: list[subprocess.Popen[bytes]]
                                                    ) -> None:
    impostor = fake_node(spawn, tmp_path, config(cluster, 1))
    rec = node_process.record(impostor.pid, config(cluster, 1))
    assert rec.start_ticks is not None
    earlier = node_process.PidRecord(rec.pid, rec.start_ticks - 1, rec.config)
    node_process.write(pidfile(cluster, 1), earlier)
    code, err = run("down", cluster)
    assert code == 0 and alive(impostor), err
    assert f"node 1: pid {impostor.pid} was reused: it started after the node" in err

    # The same process with its true start time is the node's: then it is stopped.
    node_process.write(pidfile(cluster, 1), rec)
    code, err = run("down", cluster)
    assert code == 0, err
    assert impostor.wait(timeout=10) == -15  # SIGTERM
    assert err.startswith(f"node 1: stopped (pid {impostor.pid}, ")
    assert not pidfile(cluster, 1).exists()


def test_a_stale_pid_file_is_removed(cluster: Path) -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    pidfile(cluster, 3).write_text(f"{done.pid}\n")
    pidfile(cluster, 2).write_text("not a pid\n")
    code, err = run("down", cluster)
    assert code == 0, err
    assert err.splitlines() == [
        f"node 3: not running (pid {done.pid} is not running); stale {pidfile(cluster, 3)} "
        "removed"]
    assert not pidfile(cluster, 3).exists() and not pidfile(cluster, 2).exists()


def test_down_stops_nodes_in_parallel_and_kills_those_ignoring_sigterm(
        cluster: Path, tmp_path: Path, spawn: list[subprocess.Popen[bytes]]) -> None:
    stubborn = {i: fake_node(spawn, tmp_path, config(cluster, i), "ignore-term")
                for i in (1, 2)}
    polite = fake_node(spawn, tmp_path, config(cluster, 3))
    for i, p in [*stubborn.items(), (3, polite)]:
        node_process.write(pidfile(cluster, i), node_process.record(p.pid, config(cluster, i)))
    timeout = 3.0
    code, err = run("down", cluster, "--timeout", timeout)
    assert code == 0, err
    assert all(p.wait(timeout=10) == -9 for p in stubborn.values())  # SIGKILL
    assert polite.wait(timeout=10) == -15
    lines = sorted(err.splitlines())
    assert len(lines) == 3
    assert lines[0] == f"node 1: killed (pid {stubborn[1].pid} ignored SIGTERM for 3 s)"
    assert lines[1] == f"node 2: killed (pid {stubborn[2].pid} ignored SIGTERM for 3 s)"
    assert lines[2].startswith(f"node 3: stopped (pid {polite.pid}, ")
    # One wait for all: one after the other, the second stubborn node would get its SIGTERM
    # a whole time-out after the first.
    term = [float(f.read_text()) for f in tmp_path.glob("fake*/mpcnode/__main__.py.term")]
    assert len(term) == 2 and abs(term[0] - term[1]) < timeout
    assert not any(pidfile(cluster, i).exists() for i in (1, 2, 3))
