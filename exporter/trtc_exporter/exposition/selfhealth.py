"""The exporter about itself: reload outcome, credential source, pricing, shard, build info."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from trtc_exporter.exposition.families import family
from trtc_exporter.runtime import BUILD_INFO, Runtime


class SelfHealthCollector(Collector):
    """Families read from :class:`Runtime` (times in wall-clock seconds, prices in USD)."""

    def __init__(self, runtime: Runtime, revision: str = "unknown") -> None:
        self._runtime = runtime
        self._revision = revision

    def describe(self) -> Iterator[Metric]:
        """Nothing: ``register()`` then never calls ``collect()`` (client_python's
        auto-describe)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Fresh families on every call, read from the runtime facts."""
        rt = self._runtime
        ok, when = family("trtc_exporter_config_last_reload_successful"), family(
            "trtc_exporter_config_last_reload_success_time_seconds")
        ok.add_metric([], 1.0 if rt.reload_successful else 0.0)
        when.add_metric([], rt.reload_success_time)
        creds = family("trtc_exporter_credentials_source")
        if rt.credentials_source:
            creds.add_metric([rt.credentials_source], 1.0)
        pricing = family("trtc_exporter_pricing_usd_per_minute")
        pricing.add_metric(["transcription"], rt.config.pricing.transcription_usd_per_minute)
        pricing.add_metric(["translation"], rt.config.pricing.translation_usd_per_minute)
        threshold = family("trtc_exporter_cost_threshold_usd")
        for app, app_config in sorted(rt.config.apps.items()):
            if app_config.daily_cost_threshold_usd is not None:
                threshold.add_metric([str(app)], app_config.daily_cost_threshold_usd)
        shard = family("trtc_exporter_shard")
        shard.add_metric([str(rt.shard_index), str(rt.shard_count)], 1.0)
        build = family("trtc_exporter_build_info")
        build.add_metric([BUILD_INFO["version"], self._revision, BUILD_INFO["python_version"]],
                         1.0)
        yield from [ok, when, creds, pricing, threshold, shard, build]
