"""The API instruments' labelled children are kept per label values and fill in the account."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from trtc_exporter.metrics import ApiMetrics


def test_labels_returns_the_same_child_each_time() -> None:
    """Two calls with the same values give one child, and its count reaches the registry."""
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    child = metrics.requests.labels("DescribeAITranscription", "ap-guangzhou")
    assert metrics.requests.labels("DescribeAITranscription", "ap-guangzhou") is child
    child.inc()
    metrics.requests.labels("DescribeAITranscription", "ap-guangzhou").inc()
    assert registry.get_sample_value("trtc_api_requests_total", {
        "action": "DescribeAITranscription", "region": "ap-guangzhou"}) == 2.0


def test_account_views_keep_their_own_children() -> None:
    """Each account's view labels its own series, cached apart from the other account's."""
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry, accounts=True)
    a, b = metrics.for_account("a"), metrics.for_account("b")
    a.requests.labels("DescribeAITranscription", "ap-guangzhou").inc()
    b.requests.labels("DescribeAITranscription", "ap-guangzhou").inc(3)
    a.requests.labels("DescribeAITranscription", "ap-guangzhou").inc()
    assert registry.get_sample_value("trtc_api_requests_total", {
        "account": "a", "action": "DescribeAITranscription", "region": "ap-guangzhou"}) == 2.0
    assert registry.get_sample_value("trtc_api_requests_total", {
        "account": "b", "action": "DescribeAITranscription", "region": "ap-guangzhou"}) == 3.0
