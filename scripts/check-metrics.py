#!/usr/bin/env python3
"""Checks that the chart's alerts and Grafana dashboard ask for metrics the code really exports.

  check-metrics.py RENDERED.yaml URL...

RENDERED.yaml is the chart rendered with metrics.prometheusRule and metrics.dashboard enabled (and
metrics.podMonitor, whose relabelings add target labels). Every PromQL expression of the
PrometheusRules and of the dashboards (their panels' targets and their template variables' queries)
must name at least one campus_ metric, and every campus_ metric it names must be a sample on the
/metrics of one of the running processes at URL... (scraped again until all are there or
CHECK_METRICS_TIMEOUT seconds, default 60, passed). Every label an expression matches on or
aggregates by must be a label of those samples, or a target label Prometheus adds (namespace, pod,
job, instance, container, endpoint) or a PodMonitor's relabelings add.

Prints one line per check and 'check-metrics: N passed, N failed'.
"""
import json
import os
import re
import sys
import time
import urllib.request

import yaml

passed = failed = 0
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "endpoint", "service"}
METRIC = re.compile(r"\bcampus_[A-Za-z0-9_]+\b")
SELECTOR = re.compile(r"\b(campus_[A-Za-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\((?:[^,()]|\([^)]*\))*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")
SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s")
SAMPLE_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=\"(?:[^\"\\]|\\.)*\"")


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"check-metrics: ok   {what}")
    else:
        failed += 1
        print(f"check-metrics: FAIL {what}{': ' + detail if detail else ''}", file=sys.stderr)


def exprs_in_dashboard(node, where, out):
    """Every PromQL string of a Grafana dashboard: targets' expr, query variables' query."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                out.append((where, v))
            elif k == "query" and isinstance(v, str) and node.get("type") == "query":
                out.append((where + f" variable {node.get('name')}", v))
            elif k == "query" and isinstance(v, dict) and isinstance(v.get("query"), str):
                out.append((where + f" variable {node.get('name')}", v["query"]))
            else:
                title = node.get("title")
                exprs_in_dashboard(v, f"{where} / {title}" if k == "targets" and title else where, out)
    elif isinstance(node, list):
        for v in node:
            exprs_in_dashboard(v, where, out)


def scrape(urls):
    """metric sample name -> label names seen on it, over every URL; and the URLs that failed."""
    names, errors = {}, []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as res:
                text = res.read().decode()
        except OSError as e:
            errors.append(f"{url}: {e}")
            continue
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if m:
                names.setdefault(m.group(1), set()).update(SAMPLE_LABEL.findall(m.group(2) or ""))
    return names, errors


def main():
    rendered, urls = sys.argv[1], sys.argv[2:]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    exprs = []
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    for r in rules:
        for g in r["spec"]["groups"]:
            for rule in g["rules"]:
                exprs.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]))
    dashboards = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard")]
    for cm in dashboards:
        for key, text in cm.get("data", {}).items():
            exprs_in_dashboard(json.loads(text), f"dashboard {key}", exprs)
    relabeled = {rl["targetLabel"] for d in docs if d.get("kind") == "PodMonitor"
                 for ep in d["spec"].get("podMetricsEndpoints", []) for rl in ep.get("relabelings", [])
                 if rl.get("targetLabel")}
    check(rules and dashboards and len(exprs) >= 10,
          f"the rendered chart has {len(rules)} PrometheusRule(s) and {len(dashboards)} dashboard(s) with {len(exprs)} PromQL expressions")
    check(bool(relabeled), f"the PodMonitors add the target labels {sorted(relabeled)}")
    allowed_targets = TARGET_LABELS | relabeled | {"le"}

    wanted = set()
    for where, e in exprs:
        names = set(METRIC.findall(e))
        if not names:
            check(False, f"{where} names a campus_ metric", e)
        wanted |= names

    timeout = float(os.environ.get("CHECK_METRICS_TIMEOUT", "60"))
    deadline = time.time() + timeout
    while True:
        exported, errors = scrape(urls)
        missing = sorted(wanted - exported.keys())
        if (not missing and not errors) or time.time() > deadline:
            break
        time.sleep(2)
    check(urls and not errors, f"{len(urls)} processes answer /metrics", "; ".join(errors) or "no URL given")
    campus = sorted(n for n in exported if n.startswith("campus_"))
    check(len(campus) == len(exported), f"every sample of the {len(urls)} processes is named campus_… ({len(campus)} names)",
          " ".join(sorted(set(exported) - set(campus))))
    check(not missing, f"the {len(wanted)} metrics the alerts and the dashboard use are exported by the running processes",
          "not exported: " + " ".join(missing))

    # Labels: those a selector matches on, on the samples of its metric (or added by the target);
    # those an aggregation keeps, on the samples of a metric of the expression.
    bad = []
    for where, e in exprs:
        names = set(METRIC.findall(e))
        seen = set().union(*(exported.get(n, set()) for n in names)) if names else set()
        for metric, body in SELECTOR.findall(e):
            for label in MATCHER.findall(body):
                if label not in exported.get(metric, set()) | allowed_targets:
                    bad.append(f"{where}: {metric} has no label {label}")
        for group in GROUPING.findall(e) + [[l] for l in LABEL_VALUES.findall(e)]:
            for label in (group.split(",") if isinstance(group, str) else group):
                label = label.strip()
                if label and label not in seen | allowed_targets:
                    bad.append(f"{where}: no metric of `{e.strip()[:80]}…` has the label {label}")
    check(not bad, "every label the expressions match on or aggregate by is exported or added by the target", "; ".join(sorted(set(bad))))
    print(f"check-metrics: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
