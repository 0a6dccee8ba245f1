"""Shared pieces of the sweep tests: the 4-cell planted spec, and a Ray cluster started with `ray start`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End a process group this test started (by its id), then reap the leader."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
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
    """A Ray cluster of two nodes on this machine, each `ray start --block` in its own process group."""

    def __init__(self, temp_dir: Path, cpus_per_node: int = 1) -> None:
        self.temp_dir = temp_dir
        self.address = f"127.0.0.1:{_free_port()}"
        self.logs = temp_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        common = ["--block", f"--num-cpus={cpus_per_node}", "--object-store-memory=100000000",
                  "--node-ip-address=127.0.0.1", "--disable-usage-stats"]  # fmt: skip
        self.head = self._start(
            "head",
            [
                "--head",
                f"--port={self.address.split(':')[1]}",
                "--include-dashboard=false",
                f"--temp-dir={temp_dir / 'ray'}",
                *common,
            ],  # fmt: skip
        )
        self._wait_nodes(1)
        self.worker = self._start("worker", [f"--address={self.address}", *common])
        self._wait_nodes(2)

    def _start(self, name: str, words: list[str]) -> subprocess.Popen[bytes]:
        env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        with (self.logs / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [_ray_bin(), "start", *words], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def alive_nodes(self) -> int:
        """Nodes the cluster reports alive (`ray status`)."""
        done = subprocess.run(
            [_ray_bin(), "status", f"--address={self.address}"], capture_output=True, text=True, timeout=60
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
            _kill_group(proc)
        time.sleep(1)
        left = _leftovers(self.temp_dir)
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left


@contextmanager
def ray_cluster(temp_dir: Path) -> Iterator[Cluster]:
    cluster = Cluster(temp_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
