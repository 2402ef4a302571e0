"""``trtc-transcription-exporter simulate``: run the fake TRTC endpoint until SIGTERM/SIGINT.

Without ``--scenario`` and credentials it serves the demo account and prints its generated keys
(fake, valid only against this process) with a matching exporter config on stdout, so a person can
point an exporter at it in one copy-paste. Nothing else ever prints credentials.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

import yaml

from trtc_exporter import logsetup
from trtc_exporter.errors import Errors
from trtc_exporter.secret import Secret
from trtc_exporter.signals import Signals
from trtc_exporter.simulator.auth import Credential
from trtc_exporter.simulator.callback_config import CallbackSpec, check_url
from trtc_exporter.simulator.demo import demo_scenario, demo_targets
from trtc_exporter.simulator.scenario import Scenario, ScenarioError, load_scenario
from trtc_exporter.simulator.server import SimulatorServer

log = logging.getLogger("trtc_exporter.simulator")


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, got {value!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trtc-transcription-exporter simulate",
        description="Serve a fake Tencent Cloud TRTC API 3.0 endpoint (for demos and tests).",
    )
    p.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="address to serve on; port 0 picks a free port (default 127.0.0.1:8080)",
    )
    p.add_argument("--scenario", metavar="FILE", help="YAML scenario (default: the demo account)")
    p.add_argument("--seed", type=int, default=None, help="seed for ids, faults and demo keys")
    p.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="requests per second per SecretId and action (default 20)",
    )
    p.add_argument(
        "--callbacks.url",
        dest="callbacks_url",
        metavar="URL",
        help="send TRTC event callbacks of the tasks to URL (overrides the scenario's "
        "callbacks.url; without a callbacks block: unsigned, 6 sentences per minute)",
    )
    p.add_argument("--secret-id", help="accept this SecretId (with --secret-key) instead")
    p.add_argument("--secret-key", help="the SecretKey for --secret-id")
    p.add_argument(
        "--log.level", dest="log_level", default="info", choices=list(logsetup.LEVELS),
        help="only log messages of this severity or above",
    )
    p.add_argument(
        "--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"],
        help="output format of log messages, as the exporter's",
    )
    return p  # fmt: skip


def _scenario(args: argparse.Namespace) -> tuple[Scenario, bool]:
    """The scenario to serve and whether its credentials are the generated demo ones."""
    if args.scenario:
        scenario = load_scenario(args.scenario)
        if args.seed is not None:
            scenario = dataclasses.replace(scenario, seed=args.seed)
    else:
        scenario = demo_scenario(7 if args.seed is None else args.seed)
    generated = not args.scenario
    if args.secret_id:
        cred = Credential(args.secret_id, Secret(args.secret_key))
        scenario = dataclasses.replace(scenario, credentials=(cred,))
        generated = False
    if args.rate_limit is not None:
        scenario = dataclasses.replace(scenario, rate_limit=args.rate_limit, rate_limits={})
    if args.callbacks_url is not None:
        errors = Errors()
        url = check_url(args.callbacks_url, "--callbacks.url", errors)
        if url is None:
            raise ScenarioError(errors.report())
        spec = scenario.callbacks or CallbackSpec(url)
        scenario = dataclasses.replace(scenario, callbacks=dataclasses.replace(spec, url=url))
    return scenario, generated


def _print_demo_config(scenario: Scenario, url: str) -> None:
    cred = scenario.credentials[0]
    config: dict[str, Any] = {
        "api": {"endpoint": url, "region": "ap-guangzhou", "rate_limit": scenario.rate_limit},
        "targets": demo_targets(scenario),
    }
    sys.stdout.write(
        "# Fake credentials of this simulator (they work nowhere else):\n"
        f"export TENCENTCLOUD_SECRET_ID={cred.secret_id}\n"
        f"export TENCENTCLOUD_SECRET_KEY={cred.secret_key.reveal()}\n"
        "# Exporter config for the demo account:\n" + yaml.safe_dump(config, sort_keys=False)
    )
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for usage or scenario errors)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulate"]:
        args_list = args_list[1:]
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    logsetup.setup(args.log_level, args.log_format)  # the exporter's format: one grep for both
    if bool(args.secret_id) != bool(args.secret_key):
        sys.stderr.write("simulate: --secret-id and --secret-key go together\n")
        return 2
    try:
        scenario, generated = _scenario(args)
    except ScenarioError as exc:
        for line in exc.errors:
            sys.stderr.write(f"{args.scenario or 'simulate'}: {line}\n")
        return 2
    try:
        server = SimulatorServer.from_scenario(scenario, *args.listen)
    except OSError as exc:
        sys.stderr.write(f"simulate: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}\n")
        return 1
    url = server.start()
    if generated:
        _print_demo_config(scenario, url)
    _wait_for_signal()
    log.info("stopping simulator")
    server.stop()
    return 0


def _wait_for_signal() -> None:
    _stop_on_signals().wait()  # no timeout: the signals thread sets it


def _stop_on_signals() -> threading.Event:
    """An event SIGTERM/SIGINT set, through the exporter's :class:`Signals` (its handlers take
    no lock the main thread may hold: one that set this event itself hung if the signal landed
    while the wait held the event's lock). SIGHUP is logged, nothing to reload."""
    signals = Signals().install()
    signals.running(lambda: log.info("SIGHUP: the simulator has nothing to reload"))
    return signals.stop


if __name__ == "__main__":
    raise SystemExit(main())
