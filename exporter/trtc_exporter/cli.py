"""Command line: parses flags, builds the exporter, serves HTTP, handles signals. Only wiring.

Exit codes: 0 normal stop and valid ``--config.check``; 2 usage, config or credentials errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from trtc_exporter import __version__, allocator, logsetup
from trtc_exporter.api.credentials import CredentialsError
from trtc_exporter.app import Exporter
from trtc_exporter.checks import check
from trtc_exporter.config.model import load_config
from trtc_exporter.errors import ConfigError, counted
from trtc_exporter.polling.planning import budget_rates, plan
from trtc_exporter.signals import Signals, StopDuringStartup
from trtc_exporter.targets.registrations import RegistrationStoreError
from trtc_exporter.web.serve import ServeError, load_web_config, make_webhook_listener, serve
from trtc_exporter.web.toolkit.connections import MAX_CONNECTIONS
from trtc_exporter.web.toolkit.webconfig import WebConfigStore

log = logging.getLogger("trtc_exporter")
EXIT_USAGE = 2
DEFAULT_CONFIG = "trtc-exporter.yml"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: dotted Prometheus-style flags in groups."""
    parser = argparse.ArgumentParser(
        prog="trtc-transcription-exporter",
        description="Prometheus exporter for Tencent Cloud TRTC AI transcription tasks. "
                    "Run 'trtc-transcription-exporter check --config.file FILE' to prove the "
                    "set-up against the API, 'trtc-transcription-exporter simulate --help' for "
                    "the API simulator.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_config_flags(parser)
    _add_web_flags(parser)
    _add_webhook_flags(parser)
    _add_log_flags(parser)
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """``--config.*``, ``--online``, ``--demo`` and ``--shard``."""
    cfg = parser.add_argument_group("configuration")
    cfg.add_argument("--config.file", dest="config_file", default=DEFAULT_CONFIG,
                     help="YAML configuration file (default: %(default)s)")
    cfg.add_argument("--config.check", dest="config_check", action="store_true",
                     help="validate the configuration, print a summary and exit 0 (valid) or 2")
    cfg.add_argument("--online", action="store_true",
                     help="with --config.check: also prove credentials, regions, reachability "
                          "and clock with one API request per region and action (as 'check')")
    cfg.add_argument("--demo", action="store_true",
                     help="run against an embedded simulator with moving demo tasks; "
                          "no config file or credentials needed")
    cfg.add_argument("--shard", default="0/1", metavar="I/N",
                     help="poll only the targets of shard I of N (stable hash); "
                          "default %(default)s")


def _add_web_flags(parser: argparse.ArgumentParser) -> None:
    """``--web.*``: the exporter's HTTP listener."""
    web = parser.add_argument_group("web")
    web.add_argument("--web.listen-address", dest="listen", action=_Repeated, default=":9877",
                     help="address to listen on, host:port, [ipv6]:port or :port; repeat the "
                          "flag to listen on several")
    web.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics",
                     help="path of the metrics endpoint (default %(default)s)")
    web.add_argument("--web.config.file", dest="web_config", default="",
                     help="exporter-toolkit web config: TLS, mTLS, basic auth, headers")
    web.add_argument("--web.healthcheck-unauthenticated", dest="health_open",
                     action="store_true",
                     help="serve /-/healthy and /-/ready without basic auth (TLS still applies)")
    web.add_argument("--web.enable-lifecycle", dest="enable_lifecycle", action="store_true",
                     help="enable POST/PUT /-/reload (off: 403; SIGHUP always reloads)")
    web.add_argument("--web.max-connections", dest="max_connections", type=_positive_int,
                     default=MAX_CONNECTIONS,
                     help="open connections per listener; at the cap a new connection replaces "
                          "the oldest one without a complete request (default %(default)s)")


def _add_webhook_flags(parser: argparse.ArgumentParser) -> None:
    """``--webhook.*``: the TRTC callback listener."""
    hook = parser.add_argument_group("webhook (TRTC event callbacks)")
    hook.add_argument("--webhook.listen-address", dest="webhook_listen", default="",
                      help="address of the TRTC callback listener (POST /webhook/trtc), "
                           "host:port or :port; off when absent")
    hook.add_argument("--webhook.config.file", dest="webhook_config", default="",
                      help="web config of the callback listener (same format as "
                           "--web.config.file): TLS, headers")


def _add_log_flags(parser: argparse.ArgumentParser) -> None:
    """``--log.level`` and ``--log.format``."""
    logs = parser.add_argument_group("logging")
    logs.add_argument("--log.level", dest="log_level", default="info",
                      choices=list(logsetup.LEVELS),
                      help="only log messages of this severity or above")
    logs.add_argument("--log.format", dest="log_format", default="logfmt",
                      choices=["logfmt", "json"],
                      help="output format of log messages")


class _Repeated(argparse.Action):
    """A repeatable flag whose default is dropped at its first use (``append`` would keep it):
    the value is the default string, or the list of every value given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest)
        setattr(namespace, self.dest, [*(current if isinstance(current, list) else []), values])


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (else a usage error, exit 2)."""
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` as (index, count); ArgumentTypeError when malformed."""
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard: expected I/N, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard: need 0 <= I < N, got {text!r}")
    return index, count


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: exit 0 on a normal stop or a valid --config.check, 2 on errors.

    Signal handlers go in before anything slow: as PID 1 an unhandled SIGTERM is ignored for
    good. A SIGTERM or SIGINT during start-up ends it at once with exit code 0.
    """
    allocator.PROCESS.limit_arenas()  # before any thread has an arena (allocator.py: why)
    allocator.PROCESS.fix_mmap_threshold()  # big blocks mmapped, given back whole
    signals = Signals().install()  # after: it starts the signals thread (two mallopt calls)
    try:
        return _main(argv, signals)
    except StopDuringStartup as stop:
        print(f"stopped by {stop} during start-up", file=sys.stderr)
        return 0


def _main(argv: Sequence[str] | None, signals: Signals) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulate"]:
        from trtc_exporter.demo import simulate  # loads the simulator only when asked

        return simulate(args_list[1:])
    parser = build_parser()
    online = args_list[:1] == ["check"]
    args = parser.parse_args(args_list[1:] if online else args_list)
    if online or (args.config_check and args.online):
        from trtc_exporter.onlinecheck import online_check  # the check command only

        logsetup.setup(args.log_level, args.log_format)
        return online_check(args.config_file, args.web_config)
    try:
        shard = parse_shard(args.shard)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    logsetup.setup(args.log_level, args.log_format)
    # A rendering scrape holds the GIL in 5 ms slices by default; a request whose budget token
    # was just granted would wait that long to be sent. 1 ms slices keep send times close to
    # their grants (the budget's guard is 20 ms).
    sys.setswitchinterval(0.001)
    try:
        store = load_web_config(args.web_config)
    except ServeError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if _no_config(args, args_list):
        return EXIT_USAGE
    if args.config_check:
        return check_config(args.config_file, basic_auth=_has_users(store))
    try:
        exporter = build_exporter(args, shard, lambda: _has_users(store))
    except (ConfigError, CredentialsError, RegistrationStoreError) as exc:
        for line in str(exc).splitlines():
            print(line, file=sys.stderr)
        return EXIT_USAGE
    return _serve(exporter, args, store, signals)


def _no_config(args: argparse.Namespace, args_list: list[str]) -> bool:
    """True (after saying so on stderr) when there is no config to run: no ``--config.file``,
    no ``--demo`` and no default file in the working directory."""
    given = any(a == "--config.file" or a.startswith("--config.file=") for a in args_list)
    if given or args.demo or Path(DEFAULT_CONFIG).exists():
        return False
    print(f"no --config.file given and no {DEFAULT_CONFIG} in {Path.cwd()}: pass "
          "--config.file PATH (see examples/), or run with --demo to try the exporter "
          "against its embedded simulator", file=sys.stderr)
    return True


def _serve(exporter: Exporter, args: argparse.Namespace, store: WebConfigStore | None,
           signals: Signals) -> int:
    """Open the callback listener (when the receiver is on) and serve until a stop signal;
    a listener that cannot start stops the exporter and exits 2."""
    try:
        webhook = None
        if exporter.webhook is not None:
            webhook = make_webhook_listener(exporter.webhook_address or args.webhook_listen,
                                            exporter.webhook, args.webhook_config)
        return serve(exporter, args, store, webhook, signals)
    except ServeError as exc:
        exporter.stop(timeout=1.0)
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE


def _has_users(store: WebConfigStore | None) -> bool:
    """True when the web config in force has basic-auth users (read again on every call)."""
    return store is not None and bool(store.current().users)


def check_config(path: str, basic_auth: bool = False) -> int:
    """``--config.check``: parse and apply every start-up check; 0 when valid, else 2."""
    try:
        config = check(load_config(path), basic_auth=basic_auth).config
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    regions = sorted({t.region for t in config.targets})
    print(f"{path}: valid")
    print(f"targets: {len(config.targets)}; regions: {', '.join(regions) or 'none'}")
    for action_plan in plan(config, config.targets, budget_rates(config)):
        print(f"plan: {action_plan.summary()}")
    return 0


def build_exporter(args: argparse.Namespace, shard: tuple[int, int],
                   basic_auth: Callable[[], bool] = lambda: False) -> Exporter:
    """The demo exporter, or one built from the checked ``--config.file``."""
    if args.demo:
        from trtc_exporter.demo import build_demo_exporter

        return build_demo_exporter(shard, webhook_address=args.webhook_listen or None)
    checked = check(load_config(args.config_file), basic_auth=basic_auth())
    config, credentials = checked.config, checked.credentials
    log.info("starting trtc-transcription-exporter %s: %s, credentials from %s",
             __version__, counted(len(config.targets), "target"), credentials.source)
    return Exporter(config, credentials, config_path=args.config_file, shard=shard,
                    basic_auth=basic_auth, accounts=checked.accounts,
                    redis_password=checked.redis_password,
                    keyring=checked.keyring if args.webhook_listen else None)
