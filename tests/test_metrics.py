"""bot.metrics in-process: bounded labels, and the dashboard and alert rules only use exposed series."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.models import Usage

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _exposed() -> set[str]:
    """Every series name /metrics can carry (labelled families have no sample until first use)."""
    metrics.enable()
    text = asyncio.run(metrics.render(None)).decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    }


def test_installation_and_event_labels_stay_bounded() -> None:
    metrics.enable(installations=[42])
    for n in range(500):  # many installations and made-up events: a handful of series
        metrics.model_usage(1000 + n, Usage("claude-sonnet-4-6", 10, 5, 0.01))
        metrics.delivery(f"event_{n}", "ignored", 200)
    metrics.model_usage(42, Usage("claude-sonnet-4-6", 10, 5, 0.01))
    text = asyncio.run(metrics.render(None)).decode()
    installations = set(re.findall(r'backend_review_model_tokens_total\{installation="([^"]*)"', text))
    assert installations == {"42", "other"}
    events = set(re.findall(r'backend_review_deliveries_total\{event="([^"]*)"', text))
    assert events <= {"pull_request", "issue_comment", "check_run", "ping", "other"}


def test_dashboard_and_alerts_use_only_exposed_series() -> None:
    exposed = _exposed()
    dashboard = json.loads((DEPLOY / "grafana" / "backend-review.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bbackend_review_[a-z_]+", expr)}
    assert used, "no series referenced"
    missing = sorted(name for name in used if name not in exposed)
    assert missing == []
