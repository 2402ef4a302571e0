"""The scenario's ``callbacks:`` block: where and how the simulator sends TRTC event callbacks.

```yaml
callbacks:
  url: http://127.0.0.1:9877/webhook/trtc   # the receiver (required)
  keys: {1400000001: ExampleKey123}          # per SdkAppId; apps without a key send no Sign
  sentences_per_minute: 6                    # per InProgress task (0: none)
  silent_tasks: [task-a]                     # InProgress, but never a sentence
  failed_starts: [task-b]                    # a start event with Payload.Status 1, nothing else
  forged: false                              # true: one delivery with a wrong Sign per run
```

Keys are up to 32 letters and digits, as the TRTC console allows (doc 80094, "Configuration").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from trtc_exporter.errors import Errors
from trtc_exporter.secret import Secret
from trtc_exporter.simulator.checks import check_int, check_list, check_mapping, check_str

KEY_PATTERN = re.compile(r"[A-Za-z0-9]{1,32}")
_KEYS = {"url", "keys", "sentences_per_minute", "silent_tasks", "failed_starts", "forged"}


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """Validated ``callbacks:`` settings."""

    url: str
    keys: dict[int, Secret] = field(default_factory=dict)
    sentences_per_minute: float = 6.0
    silent_tasks: frozenset[str] = frozenset()
    failed_starts: frozenset[str] = frozenset()
    forged: bool = False


def check_url(value: object, path: str, errors: Errors) -> str | None:
    """An http(s) URL with a host and, if given, a port > 0.

    ``urlsplit`` raises ValueError for an unclosed IPv6 bracket (``http://[::1``) and
    ``.port`` for a port past 65535: both are reported like any other bad URL.
    """
    url = check_str(value, path, errors)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (
            parts.port is None or parts.port > 0)
    except ValueError:
        usable = False
    if not usable:
        errors.add(path, f"must be an http:// or https:// URL, got {url!r}")
        return None
    return url


def parse_callbacks(value: object, path: str, errors: Errors) -> CallbackSpec | None:
    """Validate the block; appends ``path.field: problem`` lines to ``errors``."""
    before = errors.count
    data = check_mapping(value, path, errors)
    errors.extend(f"{path}.{k}: unknown key ({', '.join(sorted(_KEYS))})"
                  for k in data if k not in _KEYS)  # fmt: skip
    url = check_url(data.get("url"), f"{path}.url", errors)
    keys = {}
    for app, key in check_mapping(data.get("keys", {}), f"{path}.keys", errors).items():
        if check_int(app, f"{path}.keys.{app}", errors, 1) is None:
            continue
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            errors.add(f"{path}.keys.{app}", "must be 1 to 32 letters and digits")
        else:
            keys[app] = Secret(key)
    rate = data.get("sentences_per_minute", 6.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 600:
        errors.add(f"{path}.sentences_per_minute", f"must be a number in [0, 600], got {rate!r}")
    forged = data.get("forged", False)
    if not isinstance(forged, bool):
        errors.add(f"{path}.forged", f"must be true or false, got {forged!r}")
    silent = _ids(data.get("silent_tasks", []), f"{path}.silent_tasks", errors)
    failed = _ids(data.get("failed_starts", []), f"{path}.failed_starts", errors)
    if errors.count > before or url is None:
        return None
    return CallbackSpec(url, keys, float(rate), silent, failed, forged)


def _ids(value: object, path: str, errors: Errors) -> frozenset[str]:
    items = check_list(value, path, errors)
    return frozenset(i for n, i in enumerate(items) if check_str(i, f"{path}[{n}]", errors))
