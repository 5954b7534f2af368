"""`plantpulse import readings FILE.csv`: streams a CSV of readings to the API's
POST /v1/imports/readings, so a file is checked, audited and counted like any other import
(in the demo too, whose bus lives inside the API's process). Prints what came of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from services.settings import Settings

EXIT_REFUSED = 2  # the file or an option is wrong: nothing was published


def add_import_parser(sub: Any) -> None:
    imp = sub.add_parser("import", help="import external data through the API")
    imp_sub = imp.add_subparsers(dest="import_command", required=True)
    rd = imp_sub.add_parser(
        "readings",
        help="historical readings from CSV (channel_id,ts,value[,quality]); all or nothing",
    )
    rd.add_argument("file", type=Path)
    rd.add_argument("--reason", required=True, help="where the data comes from, for the audit")
    rd.add_argument("--url", help="the API's base URL (default: http://PT_API_HOST:PT_API_PORT)")
    rd.add_argument(
        "--token-env",
        default="PT_API_TOKEN",
        help="environment variable holding an engineer's API token (default: PT_API_TOKEN)",
    )
    rd.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole upload")


def _print_refusal(code: int, raw: bytes) -> None:
    try:
        detail = json.loads(raw)["detail"]
    except (ValueError, KeyError, TypeError):
        detail = raw.decode(errors="replace")
    if isinstance(detail, dict) and "issues" in detail:
        print(f"refused ({code}), nothing published:", file=sys.stderr)
        for i in detail["issues"]:
            where = ", ".join(
                [f"row {i['row']}"] * bool(i["row"]) + [i["column"]] * bool(i["column"])
            )
            print(f"  {where}: {i['message']}" if where else f"  {i['message']}", file=sys.stderr)
        if detail["issue_count"] > len(detail["issues"]):
            print(f"  ... {detail['issue_count']} problems in all", file=sys.stderr)
    else:
        print(f"refused ({code}): {detail}", file=sys.stderr)


def run_import(
    args: argparse.Namespace, settings: Settings, env: Mapping[str, str] = os.environ
) -> int:
    """Exit 0 published, 2 refused (the rows at fault are printed) or a bad option, 1 when the
    API cannot be reached or failed."""
    token = env.get(args.token_env)
    if not token:
        print(
            f"--token-env: {args.token_env} is not set (an engineer's API token)", file=sys.stderr
        )
        return EXIT_REFUSED
    base = args.url or f"http://{settings.api_host}:{settings.api_port}"
    url = f"{base.rstrip('/')}/v1/imports/readings?{urlencode({'reason': args.reason})}"
    try:
        with args.file.open("rb") as f:
            request = Request(
                url,
                data=f,
                method="POST",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "text/csv",
                    "Content-Length": str(os.fstat(f.fileno()).st_size),
                },
            )
            with urlopen(request, timeout=args.timeout) as response:
                got = json.load(response)
    except HTTPError as e:
        _print_refusal(e.code, e.read())
        return EXIT_REFUSED if e.code in (400, 403, 404, 409, 413, 422) else 1
    except (URLError, OSError, ValueError) as e:
        print(f"plantpulse import readings: {base}: {e}", file=sys.stderr)
        return 1
    print(
        f"{got['import_id']}: {got['readings']} readings published in {got['batches']} batches"
        f" ({got['already_stored']} already stored)"
    )
    for c in got["channels"]:
        print(
            f"  {c['channel_id']}: {c['readings']} new, {c['already_stored']} already stored,"
            f" {c['first_ts']} .. {c['last_ts']}"
        )
    return 0
