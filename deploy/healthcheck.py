"""Container health check: GET /healthz (or the path given, e.g. /readyz) of the process this
container runs: the API's port for api and demo, the metrics port for gateway, aggregator and
alerting. A process whose port is set to 0 serves nothing: the check then passes while it runs.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# the port setting of each process and its default
_PORTS = {
    "api": ("PT_API_PORT", "8000"),
    "demo": ("PT_API_PORT", "8000"),
    "gateway": ("PT_GATEWAY_METRICS_PORT", "9108"),
    "aggregator": ("PT_AGGREGATOR_METRICS_PORT", "9109"),
    "alerting": ("PT_ALERTING_METRICS_PORT", "9110"),
}


def _subcommand() -> str:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return ""
    for arg in argv:
        if arg.decode(errors="replace") in _PORTS:
            return arg.decode()
    return ""


def _port(command: str) -> int:
    if command not in _PORTS:
        return 0
    env, default = _PORTS[command]
    return int(os.environ.get(env, default))


def main(argv: list[str]) -> int:
    port = _port(_subcommand())
    if not port:
        return 0
    path = argv[1] if len(argv) > 1 else "/healthz"
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except urllib.error.HTTPError as e:  # e.g. 503 from /readyz: its body says why
        print(f"{url}: {e.code} {e.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
