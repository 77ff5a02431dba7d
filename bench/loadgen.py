"""What the HTTP benchmarks share: a free loopback port, waiting for a server, driving wrk,
and reading the hook service's own latency histogram."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, context: ssl.SSLContext | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                url, timeout=1, context=context
            ) as response:  # loopback only
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the hook server did not become ready at {url}")


def run_wrk(url: str, body_file: Path, seconds: int, connections: int) -> dict[str, float]:
    """POST ``body_file`` to ``url`` (http or https) for ``seconds``: requests/s, p50 and p99."""
    script = body_file.with_suffix(".lua")
    script.write_text(
        f"local f = io.open('{body_file}', 'rb')\nwrk.body = f:read('*a')\nf:close()\n"
        "wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('P50 %d\\nP99 %d\\nNON2XX %d\\n',"
        " latency:percentile(50), latency:percentile(99),"
        " summary.errors.status))\nend\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = int(re.search(r"^P50 (\d+)$", out, re.M).group(1)) / 1000  # type: ignore[union-attr]
    p99 = int(re.search(r"^P99 (\d+)$", out, re.M).group(1)) / 1000  # type: ignore[union-attr]
    errors = int(re.search(r"^NON2XX (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    if errors:
        raise RuntimeError(f"{errors} non-2xx answers from {url}")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


def histogram(metrics: str, hook: str) -> dict[str, float]:
    """Count, mean and the bucket bound under which 99% of the server-side observations fell."""
    buckets: list[tuple[float, float]] = []
    count = total = 0.0
    for line in metrics.splitlines():
        if f'hook="{hook}"' not in line:
            continue
        if line.startswith("spo_hook_request_duration_seconds_bucket"):
            bound = re.search(r'le="([^"]+)"', line).group(1)  # type: ignore[union-attr]
            buckets.append((float(bound), float(line.split()[-1])))
        elif line.startswith("spo_hook_request_duration_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("spo_hook_request_duration_seconds_sum"):
            total = float(line.split()[-1])
    buckets.sort()
    p99_bound = next((bound for bound, seen in buckets if seen >= 0.99 * count), float("inf"))
    under_5ms = next((seen for bound, seen in buckets if bound == 0.005), 0.0)
    return {
        "count": count,
        "mean_ms": round(total / count * 1000, 4) if count else 0.0,
        "p99_at_most_ms": p99_bound * 1000,
        "share_under_5ms": round(under_5ms / count, 5) if count else 0.0,
    }
