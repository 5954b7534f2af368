"""Container health check: GET /healthz of the process this container runs (api, gateway).

The aggregator and alerting processes serve no HTTP port yet: for them the check passes while
the process runs (it exits non-zero on a fatal error, and the container then stops).
"""

from __future__ import annotations

import os
import sys
import urllib.request


def _subcommand() -> str:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return ""
    for arg in argv:
        if arg in (b"api", b"gateway", b"aggregator", b"alerting", b"demo"):
            return arg.decode()
    return ""


def _port(command: str) -> int:
    if command in ("api", "demo"):
        return int(os.environ.get("PT_API_PORT", "8000"))
    if command == "gateway":
        return int(os.environ.get("PT_GATEWAY_METRICS_PORT", "9108"))
    return 0


def main() -> int:
    port = _port(_subcommand())
    if not port:
        return 0
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as e:
        print(f"{url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
