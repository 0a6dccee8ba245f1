"""Shared pieces of the sweep tests: the 4-cell planted spec, and a Ray cluster started with `ray start`."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

SPEC_4 = """
[sweep]
top_k = 4
truth = "planted"

[resources]
num_cpus = 1

[grid]
models = ["planted:ioi"]
tasks = ["own"]
seeds = [0, 1]
n = [8]

[[methods]]
name = "activation-patching"

[[methods]]
name = "attribution-patching"
"""
"""Four cells: the planted IOI model × exact and gradient node patching × two seeds (seconds each)."""

COMPARED = ("cell", "status", "baseline_clean", "baseline_corrupt", "top_k", "node_auc")
"""Columns that must not depend on where a cell ran."""


def write_spec(folder: Path, text: str = SPEC_4) -> Path:
    path = folder / "spec.toml"
    path.write_text(text)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def session_processes(sid: int) -> list[tuple[int, str, float]]:
    """``(pid, command line, CPU seconds)`` of every process of session ``sid`` (a node's Ray worker
    processes sit in process groups of their own, but in the session of the `ray start` that began it)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat[3]) == sid:
            found.append((int(entry.name), cmd, (int(stat[11]) + int(stat[12])) / tick))
    return found


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """End the session this test started with ``proc`` (by ids): ask, wait up to 10 s, then kill what is left."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    for pid, _, _ in session_processes(proc.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)


def _leftovers(temp_dir: Path) -> list[int]:
    """Ids of processes still running whose command line names this cluster's temp folder."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(temp_dir) in cmd and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
    return pids


class Cluster:
    """A Ray cluster of two nodes on this machine, each `ray start --block` in a session of its own."""

    def __init__(self, temp_dir: Path, cpus_per_node: int = 1) -> None:
        self.temp_dir = temp_dir
        # Ray's own folder: short, since its socket paths must fit in 107 bytes
        self.ray_dir = Path(tempfile.mkdtemp(prefix="hgray-", dir="/tmp"))
        self.port = _free_port()
        self.address = ""
        self.logs = temp_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        # a token of this cluster's own (Ray's token authentication), handed to every process that joins it
        self.env = os.environ | {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            "OMP_NUM_THREADS": "1",
        }
        common = ["--block", f"--num-cpus={cpus_per_node}", "--object-store-memory=100000000", "--disable-usage-stats"]
        self.worker: subprocess.Popen[bytes] | None = None
        self.head = self._start(
            "head",
            ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.ray_dir}",
             f"--dashboard-agent-listen-port={_free_port()}", *common],
        )  # fmt: skip
        try:
            self.address = self._head_address()
            self._wait_nodes(1)
            self.worker = self._start(
                "worker", [f"--address={self.address}", f"--dashboard-agent-listen-port={_free_port()}", *common]
            )
            self._wait_nodes(2)
        except BaseException:
            self.stop()
            raise

    def _head_address(self, timeout: float = 120.0) -> str:
        """The address the head node listens on (the machine's IP, which Ray picks), from its log."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(r"ray start --address='([^']+)'", (self.logs / "head.log").read_text())
            if found:
                return found.group(1)
            if self.head.poll() is not None:
                raise RuntimeError(f"ray start --head ended: {(self.logs / 'head.log').read_text()[-2000:]}")
            time.sleep(1)
        raise RuntimeError(f"the Ray head did not start in {timeout:.0f} s")

    def _start(self, name: str, words: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [_ray_bin(), "start", *words],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def alive_nodes(self) -> int:
        """Nodes the cluster reports alive (`ray status`)."""
        done = subprocess.run(
            [_ray_bin(), "status", f"--address={self.address}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
        )
        active = done.stdout.split("Active:")[-1].split("Pending:")[0] if "Active:" in done.stdout else ""
        return active.count("node_")

    def _wait_nodes(self, n: int, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.head.poll() is not None:
                raise RuntimeError(f"ray start --head ended: {(self.logs / 'head.log').read_text()[-2000:]}")
            if self.alive_nodes() >= n:
                return
            time.sleep(2)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout:.0f} s")

    def kill_worker(self) -> None:
        """Kill the second node (its raylet and every worker process it started) at once."""
        with suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=20)

    def stop(self) -> list[int]:
        """Stop both nodes; return the ids of processes of this cluster still running (then killed)."""
        for proc in (self.worker, self.head):
            if proc is not None:
                _kill_session(proc)
        time.sleep(1)
        left = _leftovers(self.ray_dir)
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.ray_dir, ignore_errors=True)
        return left


@contextmanager
def ray_cluster(temp_dir: Path) -> Iterator[Cluster]:
    cluster = Cluster(temp_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
