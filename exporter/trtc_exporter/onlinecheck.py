"""``trtc-transcription-exporter check``: prove the set-up against the real API, then report.

After the start-up checks (:mod:`trtc_exporter.checks`), it sends one signed request per
configured (action, region) pair — DescribeAITranscription for 1.0 targets,
DescribeCloudTranscription for 2.0 targets, in each region their targets use — through the real
:class:`TrtcClient` and a :class:`Budget` (so every request spends a token; no retries). The task
id cannot exist, so ``FailedOperation.TaskNotExist`` (or an ``InvalidParameter`` answer) is the
expected answer: the API verified signature, keys and region before looking the task up (see
Tencent Cloud API 3.0's error order, ``api/tencentcloud-api3.md``). It also reports the clock
offset from the answers' ``Date`` header, the capacity plan, the web config, and the webhook keys
and Redis (PING) when configured. Never prints a secret value, only where credentials come from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

import redis
from prometheus_client import CollectorRegistry

from trtc_exporter.api.budget import Budget
from trtc_exporter.api.client import TrtcClient
from trtc_exporter.api.credentials import CredentialProvider
from trtc_exporter.api.skew import WARN_ABOVE_SECONDS, SkewEstimator
from trtc_exporter.checks import check
from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.config.coordination import read_password
from trtc_exporter.config.model import Config, load_config
from trtc_exporter.coordination.link import connect, describe, refusal
from trtc_exporter.errors import ConfigError
from trtc_exporter.generations import ACTIONS
from trtc_exporter.metrics import ApiMetrics
from trtc_exporter.polling.planning import budget_rates, plan
from trtc_exporter.response import NOT_FOUND_CODES, ApiFailure
from trtc_exporter.target import Target
from trtc_exporter.web.toolkit.webconfig import WebConfigError, load_web_config
from trtc_exporter.webhook.keys import KeyFileError, read_key

EXIT_FAILED, EXIT_CONFIG = 1, 2
PROBE_TASK_ID = "trtc-exporter-check-no-such-task"
"""A task id no TRTC task has: the API answers TaskNotExist once signature and region pass."""
AUTH_FIXES = {
    "AuthFailure.SignatureFailure": "the SecretKey does not match the SecretId: check the key "
                                    "file or TENCENTCLOUD_SECRET_KEY",
    "AuthFailure.SecretIdNotFound": "the SecretId does not exist or is disabled: create or "
                                    "enable it in the CAM console",
    "AuthFailure.InvalidSecretId": "the SecretId is malformed: check the id file or "
                                   "TENCENTCLOUD_SECRET_ID",
    "AuthFailure.SignatureExpire": "the local clock is more than 300 s off: sync it with NTP",
    "AuthFailure.TokenFailure": "the session token is invalid or expired: refresh the "
                                "temporary credentials",
    "AuthFailure.UnauthorizedOperation": "the key may not call this action: grant "
                                         "trtc:Describe* to its CAM user or role",
    "UnauthorizedOperation": "the key may not call this action: grant trtc:Describe* in CAM",
}
REDIS_FIXES = {
    "coordination.password_file": "Redis refused the password: put the right one in "
                                  "coordination.password_file (or set none if Redis has none)",
    "coordination.redis_url": "use a database number Redis has (its `databases` setting) in "
                              "coordination.redis_url, and an ACL user allowed to PING",
    "coordination.ca_file": "set coordination.ca_file to the CA that signed Redis' certificate "
                            "(and use the host name the certificate names)",
}
"""The fix printed for a Redis that refuses the configuration, by the field it names."""
TRANSPORT_FIX = ("no answer from {endpoint}: check api.endpoint, DNS, proxy settings "
                 "(HTTPS_PROXY) and firewalls")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the report: what was checked, whether it passed, what was found, the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def probe_targets(config: Config) -> list[Target]:
    """One made-up target per (API generation, region) the configured targets use (the default
    region's 1.0 action when there are none); 2.0 needs an SdkAppId, taken from a target."""
    apps: dict[tuple[str, str], int | None] = {}
    for t in config.targets:
        apps.setdefault((t.api, t.region), t.sdk_app_id)
    if not apps:
        apps[("ai_transcription", config.api.region)] = None
    return [Target(api=api, region=region, task_id=PROBE_TASK_ID, sdk_app_id=app)
            for (api, region), app in sorted(apps.items())]


def _judge(target: Target, failure: ApiFailure | None, endpoint: str) -> CheckResult:
    name = f"{ACTIONS[target.api]} in {target.region}"
    if failure is None:
        return CheckResult(name, True, "answered (signature, keys and region accepted)")
    code = failure.code
    said = code if failure.message in ("", code) else f"{code}: {failure.message}"
    if code in NOT_FOUND_CODES or code.startswith("InvalidParameter"):
        return CheckResult(name, True, f"{code} for a made-up task: signature, keys and "
                                       "region accepted")
    if code in ("Timeout", "ConnectionError"):
        return CheckResult(name, False, said, TRANSPORT_FIX.format(endpoint=endpoint))
    if code == "UnsupportedRegion":
        return CheckResult(name, False, code, f"{target.api} is not offered in {target.region}: "
                                              "change the target's region or api.region")
    fix = AUTH_FIXES.get(code) or (
        "AuthFailure: check the credentials" if code.startswith("AuthFailure") else
        "the API refused the request; retry later and see docs/troubleshooting.md")
    return CheckResult(name, False, said, fix)


def api_checks(config: Config, credentials: CredentialProvider,
               clock: Clock = SYSTEM_CLOCK) -> list[CheckResult]:
    """Send the probe requests (one budget token each, no retries); one result per request and
    one for the clock offset measured from their Date headers."""
    skew = SkewEstimator(alpha=1.0)  # the last sample, not an average over a handful
    client = TrtcClient(endpoint=config.api.endpoint, credentials=credentials,
                        budget=Budget(budget_rates(config), clock, guard=config.api.rate_guard),
                        metrics=ApiMetrics(CollectorRegistry()), clock=clock,
                        timeout=config.api.timeout, max_retries=0, skew=skew)
    results, answered = [], False
    for target in probe_targets(config):
        result = client.describe(target).result
        failure = result if isinstance(result, ApiFailure) else None
        answered |= failure is None or failure.code not in ("Timeout", "ConnectionError")
        results.append(_judge(target, failure, config.api.endpoint))
    return results + [_skew_result(skew, answered)]


def _skew_result(skew: SkewEstimator, answered: bool) -> CheckResult:
    if not answered:
        return CheckResult("clock", False, "not measured: no answer from the API",
                           "fix the requests above first")
    offset = skew.seconds
    detail = f"local clock {abs(offset):.0f} s {'behind' if offset > 0 else 'ahead of'} the API"
    if abs(offset) > WARN_ABOVE_SECONDS:
        return CheckResult("clock", False, detail, "sync the clock with NTP (over 300 s every "
                                                   "request fails with SignatureExpire)")
    return CheckResult("clock", True, detail + " (Date has 1 s resolution)")


def plan_results(config: Config) -> list[CheckResult]:
    """The capacity plan per action: a pass unless the targets need more than the budget."""
    return [CheckResult(f"plan {p.action}", p.stretch <= 1, p.summary(),
                        "" if p.stretch <= 1 else "raise api.rate_limit, lengthen poll_interval "
                                                  "or split targets over accounts")
            for p in plan(config, config.targets, budget_rates(config)) if p.targets]


def web_config_result(path: str) -> CheckResult:
    """--web.config.file parses, and every file it names (TLS, client CA) can be read."""
    if not path:
        return CheckResult("web config", True, "none (plain HTTP, no auth)")
    try:
        web = load_web_config(path)
        for name in web.files:
            with open(name, "rb"):
                pass
    except WebConfigError as exc:
        return CheckResult("web config", False, str(exc).replace("\n", "; "),
                           "fix the web config file (exporter-toolkit format)")
    except OSError as exc:
        return CheckResult("web config", False, f"{exc.filename}: {exc.strerror}",
                           "make the TLS files readable by the exporter's user")
    tls = "TLS" if web.tls else "plain HTTP"
    return CheckResult("web config", True, f"{path}: {tls}, {len(web.users)} basic-auth users")


def webhook_results(config: Config) -> list[CheckResult]:
    """The callback key files (``webhook.key_file``, ``apps.<id>.callback_key_file``) are
    readable and hold a TRTC key; the keys themselves are never shown."""
    hook = config.webhook
    files = [("webhook.key_file", hook.key_file)] if hook.key_file else []
    files += [(f"apps.{app}.callback_key_file", path)
              for app, path in sorted(config.callback_key_files().items())]
    if not files:
        detail = ("allow_unsigned: true" if hook.allow_unsigned
                  else "needed only with --webhook.listen-address")
        return [CheckResult("webhook key", True, f"no callback key configured ({detail})")]
    results = []
    for field_path, path in files:
        try:
            read_key(path, field_path)
        except KeyFileError as exc:
            results.append(CheckResult("webhook key", False, str(exc),
                                       "fix or create the key file"))
            continue
        results.append(CheckResult("webhook key", True, f"{field_path}: {path} readable"))
    return results


def redis_results(config: Config) -> list[CheckResult]:
    """PING the coordination Redis with a short timeout (when ``coordination.redis_url`` is
    configured); the password file is read, never shown."""
    coord = config.coordination
    if coord.redis_url is None:
        return []
    where = describe(coord.redis_url)
    try:
        connect(coord, read_password(coord.password_file)).ping()
    except ConfigError as exc:
        return [CheckResult("redis", False, str(exc), "fix coordination.password_file")]
    except redis.RedisError as exc:
        refused = refusal(exc, coord)
        if refused is not None:  # the line start-up exits 2 with, and the class
            field = refused.split(":", 1)[0]
            return [CheckResult("redis", False, f"{refused} ({type(exc).__name__})",
                                REDIS_FIXES.get(field, f"correct {field}"))]
        return _unreachable(where, exc)
    except Exception as exc:  # redis-py raises its own tree and OSErrors; all mean "no"
        return _unreachable(where, exc)
    return [CheckResult("redis", True, f"PING {where}: PONG")]


def _unreachable(where: str, exc: Exception) -> list[CheckResult]:
    return [CheckResult("redis", False, f"PING {where}: {type(exc).__name__}",
                        "check coordination.redis_url, the password and TLS files, and "
                        "that Redis is reachable")]


MARKS = {True: ("✓", "OK"), False: ("✗", "FAIL")}


def print_report(results: Iterable[CheckResult], out: TextIO = sys.stdout) -> bool:
    """Print the ✓/✗ table (OK/FAIL when ``out`` cannot encode them); True when all passed."""
    encoding = (getattr(out, "encoding", None) or "utf-8").lower().replace("-", "")
    utf8 = encoding.startswith("utf")
    rows = list(results)
    width = max((len(r.name) for r in rows), default=0)
    for r in rows:
        mark = MARKS[r.ok][0 if utf8 else 1]
        line = f"{mark:4} {r.name:{width}}  {r.detail}"
        print(line if utf8 else line.encode("ascii", "replace").decode(), file=out)
        if r.fix:
            fix = f"{'':4} {'':{width}}  fix: {r.fix}"
            print(fix if utf8 else fix.encode("ascii", "replace").decode(), file=out)
    passed = all(r.ok for r in rows)
    print(("all checks passed" if passed else
           f"{sum(not r.ok for r in rows)} of {len(rows)} checks failed"), file=out)
    return passed


def run_checks(config: Config, credentials: CredentialProvider, web_config: str, *,
               extra: Iterable[Callable[[Config], list[CheckResult]]] = (webhook_results,
                                                                         redis_results),
               clock: Clock = SYSTEM_CLOCK) -> list[CheckResult]:
    """Every result in report order: credentials, API requests, clock, plan, web config, extras
    (webhook keys, Redis)."""
    results = [CheckResult("credentials", True, f"found in {credentials.source} "
                                                "(the value is never shown)")]
    results += api_checks(config, credentials, clock)
    results += plan_results(config)
    results.append(web_config_result(web_config))
    for more in extra:
        results += more(config)
    return results


def _has_users(web_config: str) -> bool:
    try:
        return bool(web_config) and bool(load_web_config(web_config).users)
    except WebConfigError:
        return False  # reported as a failed check by web_config_result


def online_check(config_path: str, web_config: str = "", *, clock: Clock = SYSTEM_CLOCK,
                 out: TextIO | None = None) -> int:
    """The ``check`` command: 0 when every check passed, 1 when one failed, 2 when the config
    does not pass the start-up checks (printed to stderr, one line per problem)."""
    try:
        checked = check(load_config(config_path), basic_auth=_has_users(web_config))
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    results = run_checks(checked.config, checked.credentials, web_config, clock=clock)
    return 0 if print_report(results, out or sys.stdout) else EXIT_FAILED
