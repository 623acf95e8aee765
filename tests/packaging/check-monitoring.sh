#!/usr/bin/env bash
# Checks the ready-made monitoring of packaging/: the Prometheus alerting rules parse
# (promtool check rules) and fire as their unit tests expect (promtool test rules), and
# the Grafana dashboard is JSON whose every query parses as PromQL (promtool, through a
# generated rules file) and names only metrics that coordinator/metrics.c renders, as do
# the rules. Exits 77 (skipped) without promtool.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
RULES=$SRC/packaging/prometheus/tpc-alerts.yml
DASH=$SRC/packaging/grafana/tpc-coordinator.json
command -v promtool >/dev/null || { echo "check-monitoring: no promtool; skipped" >&2; exit 77; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tpc-monitoring.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

promtool check rules "$RULES"
(cd "$(dirname "$RULES")" && promtool test rules tpc-alerts.test.yml)

python3 - "$SRC/coordinator/metrics.c" "$RULES" "$DASH" "$WORK/dashboard-rules.yml" <<'PY'
import json, re, sys
metrics_c, rules, dash, out = sys.argv[1:]
known = set(re.findall(r'"(tpc_[a-z_]+)"', open(metrics_c).read()))
known |= {n + s for n in list(known) for s in ("_bucket", "_sum", "_count")}
known.add("up")
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        exprs.extend((p["title"], t["expr"]) for t in p.get("targets", []))
d = json.load(open(dash))
walk(d["panels"])
if not exprs:
    sys.exit("check-monitoring: the dashboard has no queries")
rule_exprs = re.findall(r'^\s+expr: (.*)$', open(rules).read(), re.M)
bad = []
for where, e in exprs + [("rules", r) for r in rule_exprs]:
    for name in re.findall(r'\b(tpc_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$|\s*[/<>=*+-])', e):
        if name not in known:
            bad.append(f"{where}: {name} is not a metric of coordinator/metrics.c")
if bad:
    sys.exit("\n".join(bad))
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
        f.write(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}\n")
print(f"check-monitoring: {len(exprs)} dashboard queries and {len(rule_exprs)} alert "
      f"expressions name only metrics the coordinator renders")
PY
promtool check rules "$WORK/dashboard-rules.yml" >/dev/null
echo "check-monitoring: every dashboard query parses as PromQL"
