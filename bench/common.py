"""Helpers shared by the load-test and publisher benchmark scripts.

Everything here runs on loopback only: servers bind to 127.0.0.1 and every load
generator targets 127.0.0.1, for a fixed duration.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = REPO / "target" / "release" / "partner-feed"

# Categories of the generated indicators, in the order their SQL assigns them.
CATEGORIES = ["phishing", "investment_scam", "crypto_drainer", "malware_download"]


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def build_release() -> None:
    """Builds the release binary the benchmarks run."""
    log("cargo build --release --bin partner-feed")
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "partner-feed"],
        cwd=REPO,
        check=True,
    )


def fresh_dir(name: str) -> Path:
    """Returns an empty folder under target/bench for one benchmark's files."""
    path = REPO / "target" / "bench" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> str:
    """Describes the machine: cores, memory and kernel."""
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return (
        f"{os.cpu_count()} cores, {memory_kib / 1024 / 1024:.0f} GiB, "
        f"Linux {os.uname().release}, {time.strftime('%Y-%m-%d')}"
    )


def product_env(workdir: Path, database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Returns the environment that points `partner-feed` at one database and store."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("I4G_") and not name.startswith("AWS_")
    }
    env.update(
        {
            "I4G_DATABASE__URL": database_url,
            "I4G_STORAGE__URL": f"file://{workdir / 'objects'}",
            "RUST_LOG": "warn",
        }
    )
    env.update(extra or {})
    return env


def run_product(args: list[str], workdir: Path, env: dict[str, str]) -> str:
    """Runs `partner-feed ARGS` to completion and returns its standard output."""
    result = subprocess.run(
        [str(BINARY), *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"partner-feed {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def measure(command: list[str], **kwargs) -> tuple[float, int]:
    """Runs a command and returns its wall time in seconds and its peak resident set in KiB.

    The peak comes from wait4's rusage of that one child process, so it counts the child's
    own memory, not that of servers it talks to.
    """
    started = time.monotonic()
    process = subprocess.Popen(command, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} exited with {process.returncode}")
    return seconds, usage.ru_maxrss


class Servers:
    """Background processes of one benchmark, stopped by PID at exit."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def start(self, command: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(command, **kwargs)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)

    def __enter__(self) -> "Servers":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop_all()


def wait_for_http(url: str, timeout: float = 120.0, require_ok: bool = False) -> None:
    """Polls a loopback URL until it responds: with 200 when `require_ok`, else with any status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            if not require_ok:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not respond with 200 within {timeout:.0f} s")
            time.sleep(0.1)
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not respond within {timeout:.0f} s")
            time.sleep(0.1)


def median(values: list[float]) -> float:
    return statistics.median(values)


_LATENCY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _LATENCY_UNITS[match.group(2)]


class WrkResult:
    def __init__(self, output: str) -> None:
        self.output = output
        rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
        p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
        p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
        if not (rps and p50 and p99):
            raise SystemExit(f"could not read the wrk output:\n{output}")
        self.requests_per_second = float(rps.group(1))
        self.p50_ms = _milliseconds(p50.group(1))
        self.p99_ms = _milliseconds(p99.group(1))
        statuses = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
        self.non_2xx = int(statuses.group(1)) if statuses else 0
        errors = re.search(r"Socket errors:.*", output)
        self.socket_errors = errors.group(0) if errors else ""


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    script_env: dict[str, str] | None = None,
) -> WrkResult:
    """Runs wrk against a loopback URL for a fixed time and parses its figures."""
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"refusing to load anything but loopback: {url}")
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    if script is not None:
        command += ["--script", str(script)]
    command.append(url)
    env = dict(os.environ, **(script_env or {}))
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    result = WrkResult(output)
    if result.non_2xx or result.socket_errors:
        raise SystemExit(
            f"wrk saw failures against {url} ({result.non_2xx} non-2xx, "
            f"{result.socket_errors or 'no socket errors'}):\n{output}"
        )
    return result


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise SystemExit(
            f"missing {', '.join(missing)}: install them first "
            "(Debian: apt-get install wrk nginx-light postgresql-15)"
        )
