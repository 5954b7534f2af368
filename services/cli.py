"""The `plantpulse` command: check-config, demo, db status|upgrade, token create|list|revoke,
audit verify, import readings, and each process on its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from compute.errors import PlantPulseError
from compute.model import datetime_ns
from compute.plant import Plant, PlantConfigError
from ingest import opcua_browse
from ingest.opcua_security import explain
from services import runtime
from services.cli_audit import add_audit_parser, run_audit
from services.cli_import import add_import_parser, run_import
from services.cli_tokens import add_token_parser, run_token
from services.config import load_plant
from services.logs import LogFormatError, configure_logging, log_format
from services.settings import Settings
from services.store.migrate import MigrationStatus

EXIT_CONFIG = 2
log = logging.getLogger("plantpulse")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="plantpulse", description="Plant energy, water and cleanroom telemetry"
    )
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check-config", help="validate a plant file; exit 2 naming every bad path"
    )
    check.add_argument("file", type=Path)
    demo = sub.add_parser(
        "demo", help="run the simulated plant and the whole pipeline in one process"
    )
    demo.add_argument("--data-dir", type=Path, default=Path(".plantpulse"))
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--config", type=Path, default=Path("deploy/examples/medtech-plant.yaml"))
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--rules", type=Path, default=Path("deploy/examples/medtech-alerts.yaml"))
    for name, text in (
        ("gateway", "read the meters and publish to Kafka"),
        ("aggregator", "consume from Kafka, aggregate and store"),
        ("api", "serve the HTTP API from the store"),
        ("alerting", "evaluate the alert rules on the readings and deliver the alerts"),
    ):
        proc = sub.add_parser(name, help=text)
        proc.add_argument("--config", type=Path, help="plant file (default: PT_CONFIG)")
        if name == "alerting":
            proc.add_argument("--rules", type=Path, help="rules file (default: PT_ALERT_RULES)")
        if name == "api":
            proc.add_argument("--host")
            proc.add_argument("--port", type=int)
    _browse_parser(sub)
    ex = sub.add_parser(
        "export", help="write a period's raw readings and buckets to CSV, for auditors"
    )
    ex.add_argument("--config", type=Path, help="plant file (default: PT_CONFIG)")
    which = ex.add_mutually_exclusive_group(required=True)
    which.add_argument("--site", help="every channel of this site")
    which.add_argument("--channels", help="comma-separated channel ids (meter.channel)")
    ex.add_argument("--start", required=True, type=datetime.fromisoformat, help="inclusive")
    ex.add_argument("--end", required=True, type=datetime.fromisoformat, help="exclusive")
    ex.add_argument("--out", required=True, type=Path, help="directory for the CSV files")
    db = sub.add_parser("db", help="the store's schema migrations (PT_STORE__URL)")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("status", help="show the applied and the pending migrations")
    db_sub.add_parser("upgrade", help="apply the pending migrations")
    add_token_parser(sub)
    add_audit_parser(sub)
    add_import_parser(sub)
    return p


def _browse_parser(sub: Any) -> None:
    b = sub.add_parser("browse", help="list an OPC UA server's variables for channel config")
    b.add_argument("endpoint", help="opc.tcp://host:port/path")
    b.add_argument("--node", default="i=85", help="start node id (default: Objects, i=85)")
    b.add_argument("--depth", type=int, default=3, help="levels below the node (default: 3)")
    b.add_argument("--mode", choices=["None", "Sign", "SignAndEncrypt"])
    b.add_argument("--policy", help="Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss")
    b.add_argument("--trust", type=Path, help="directory of trusted server certificates")
    b.add_argument("--fingerprint", help="the server certificate's pinned SHA-256")
    b.add_argument("--cert-dir", type=Path, help="client certificate (default: data dir)")
    b.add_argument("--user", help="user name; the password comes from --password-env")
    b.add_argument("--password-env", help="environment variable holding the password")
    b.add_argument("--user-cert", type=Path, help="X.509 user certificate")
    b.add_argument("--user-key", type=Path, help="its private key")
    b.add_argument("--timeout", type=float, default=10.0, help="seconds per request")


def _browse(args: argparse.Namespace) -> int:
    """Exit 0 with the table, 2 for bad arguments, 1 naming why the server was not browsed."""
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # the one-line reason says it
    try:
        options = opcua_browse.options_from_flags(
            mode=args.mode,
            policy=args.policy,
            trust=args.trust,
            fingerprint=args.fingerprint,
            cert_dir=args.cert_dir,
            user=args.user,
            password_env=args.password_env,
            user_cert=args.user_cert,
            user_key=args.user_key,
        )
        start = opcua_browse.parse_target(args.endpoint, args.node, args.depth)
        if args.password_env and args.password_env not in os.environ:
            raise ValueError(f"--password-env: {args.password_env} is not set")
        if args.timeout <= 0:
            raise ValueError("--timeout must be more than 0 seconds")
    except ValueError as e:
        print(f"plantpulse browse: {e}", file=sys.stderr)
        return EXIT_CONFIG
    pki_dir = _settings(args).data_dir / "opcua-pki"
    try:
        rows = asyncio.run(
            opcua_browse.browse(
                args.endpoint,
                options,
                start=start,
                depth=args.depth,
                pki_dir=pki_dir,
                secrets=os.environ,
                timeout_s=args.timeout,
            )
        )
    except opcua_browse.BROWSE_ERRORS as e:
        print(f"plantpulse browse: {args.endpoint}: {explain(e)}", file=sys.stderr)
        return 1
    print(opcua_browse.format_table(rows))
    return 0


def _db(args: argparse.Namespace) -> int:
    """Exit 0 with the migration state, 1 naming why the store could not be read or migrated."""
    settings = _settings(args)
    print(f"store: {runtime.describe_store(settings)}")
    try:
        if args.db_command == "upgrade":
            applied, status = asyncio.run(runtime.upgrade_store(settings))
        else:
            applied, status = [], asyncio.run(runtime.migration_status(settings))
    except PlantPulseError as e:
        print(f"plantpulse db {args.db_command}: {e}", file=sys.stderr)
        return 1
    if args.db_command == "upgrade":
        names = {m.version: m.name for m in status.applied}
        for version in applied:
            print(f"applied {version:04d} {names.get(version, '?')}")
        if not applied:
            print("nothing to apply")
    print(_format_status(status))
    return 0


def _export(args: argparse.Namespace, settings: Settings, plant: Plant) -> int:
    """Naive --start/--end are in the channels' site time; exit 2 naming a bad argument."""
    if args.site is not None:
        if plant.site(args.site) is None:
            print(f"--site: unknown site {args.site!r}", file=sys.stderr)
            return EXIT_CONFIG
        ids = [k for k, r in plant.channels.items() if r.site.id == args.site]
    else:
        ids = [c.strip() for c in args.channels.split(",") if c.strip()]
        if unknown := [c for c in ids if c not in plant.channels]:
            print(f"--channels: unknown channels {unknown}", file=sys.stderr)
            return EXIT_CONFIG
    zones = {plant.channels[c].site.timezone for c in ids}
    site_tz = ZoneInfo(zones.pop()) if len(zones) == 1 else None
    bounds = []
    for name, value in (("--start", args.start), ("--end", args.end)):
        if value.tzinfo is None:
            if site_tz is None:
                print(f"{name}: give a UTC offset, the channels span sites", file=sys.stderr)
                return EXIT_CONFIG
            value = value.replace(tzinfo=site_tz)
        bounds.append(datetime_ns(value))
    if bounds[1] <= bounds[0]:
        print("--end: must be after --start", file=sys.stderr)
        return EXIT_CONFIG
    try:
        got = asyncio.run(runtime.run_export(settings, ids, bounds[0], bounds[1], args.out))
    except PlantPulseError as e:
        print(f"plantpulse export: {e}", file=sys.stderr)
        return 1
    print(f"{got.readings} readings, {got.buckets} buckets of {len(ids)} channels; {got.manifest}")
    return 0


def _format_status(status: MigrationStatus) -> str:
    lines = [f"schema version: {status.version} (this build ships {status.latest})", "applied:"]
    for a in status.applied:
        at = a.applied_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        newer = "  (newer than this build)" if a in status.unknown else ""
        lines.append(f"  {a.version:04d} {a.name:<24} {at}{newer}")
    if not status.applied:
        lines.append("  none")
    lines.append("pending:")
    lines.extend(f"  {m.version:04d} {m.name}" for m in status.pending)
    if not status.pending:
        lines.append("  none")
    return "\n".join(lines)


# user:password@ in a URL: the password is not echoed back in error messages
_URL_PASSWORD = re.compile(r"(?<=://)([^/?#@]*?):[^/?#]*@")


def _redacted(value: object) -> object:
    return _URL_PASSWORD.sub(r"\1:***@", value) if isinstance(value, str) else value


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        k: v
        for k, v in {
            "config": getattr(args, "config", None),
            "data_dir": getattr(args, "data_dir", None),
            "api_host": getattr(args, "host", None),
            "api_port": getattr(args, "port", None),
        }.items()
        if v is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as e:
        print("invalid settings:", file=sys.stderr)
        for err in e.errors():
            key = "PT_" + "__".join(str(part) for part in err["loc"]).upper()
            print(f"  {key}: {err['msg']} (got {_redacted(err.get('input'))!r})", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from e


def _load(path: Path) -> Plant:
    try:
        return load_plant(path)
    except PlantConfigError as e:
        print(f"{path}: {len(e.issues)} problem(s)", file=sys.stderr)
        for issue in e.issues:
            print(f"  {issue}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from e


async def _until_signalled(coro: Coroutine[Any, Any, None]) -> None:
    """Run until done or until SIGTERM / SIGINT, which cancel it so resources close cleanly."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        configure_logging(log_format(os.environ))
    except LogFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for noisy in ("asyncua", "pymodbus", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.command == "browse":
        return _browse(args)
    if args.command == "db":
        return _db(args)
    if args.command == "token":
        return run_token(args, _settings(args), _load)
    if args.command == "audit":
        return run_audit(args, _settings(args))
    if args.command == "import":
        return run_import(args, _settings(args))
    if args.command == "check-config":
        plant = _load(args.file)
        print(
            f"{args.file}: ok, {len(plant.sites)} site(s), {len(plant.meters)} meters, "
            f"{len(plant.channels)} channels"
        )
        return 0
    settings = _settings(args)
    plant = _load(settings.config)
    if args.command == "export":
        return _export(args, settings, plant)
    run: Callable[[], Coroutine[Any, Any, None]] = {
        "demo": lambda: runtime.run_demo(plant, settings, seed=args.seed, rules=args.rules),
        "gateway": lambda: runtime.run_gateway_process(plant, settings),
        "aggregator": lambda: runtime.run_aggregator_process(plant, settings),
        "api": lambda: runtime.run_api_process(plant, settings),
        "alerting": lambda: runtime.run_alerting_process(plant, settings, args.rules),
    }[args.command]
    try:
        asyncio.run(_until_signalled(run()))
    except PlantPulseError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
