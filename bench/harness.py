"""Shared benchmark plumbing: start servers as real processes, drive them with wrk, take medians."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is needed for the benchmarks: apt-get install -y wrk (Debian package)")
    return path


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str

    def rss_mb(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", text)
        return int(match.group(1)) / 1024 if match else float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(
    argv: list[str], env: dict[str, str], probe_path: str, port: int, timeout: float = 60
) -> tuple[Server, float]:
    """Start a server process; return it and the seconds until the probe answered 200."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv} exited with {proc.returncode}")
        try:
            if httpx.get(base + probe_path, timeout=1).status_code == 200:
                return Server(proc, base), time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise TimeoutError(f"{argv} did not answer {probe_path}")


def uvicorn_argv(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    requests: int


_LUA = """
wrk.method = "{method}"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "{ctype}"
wrk.headers["Authorization"] = "{auth}"
wrk.headers["Prefer"] = "return=minimal"
"""


def wrk(
    url: str,
    *,
    connections: int = 16,
    seconds: float = 3.0,
    method: str = "GET",
    body: str = "",
    content_type: str = "application/fhir+json",
    token: str = "",
) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LUA.format(method=method, body=body, ctype=content_type, auth=f"Bearer {token}"))
    try:
        out = subprocess.run(
            [
                need_wrk(),
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        rps, _percentile(out, "50%"), _percentile(out, "99%"), int(non2xx_match.group(1)) if non2xx_match else 0, total
    )


def _percentile(out: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", out)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def median(values: list[float]) -> float:
    return statistics.median(values)
