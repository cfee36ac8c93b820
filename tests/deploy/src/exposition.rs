//! Metric names a node exports, read from its `/metrics` text, and the check of dashboards
//! and rule files against them.

use crate::promql;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::path::Path;

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// Names seen in one or more expositions.
#[derive(Debug, Default)]
pub struct Exported {
    /// Metric names as queried (sample names: counters with `_total`).
    pub metrics: BTreeSet<String>,
    /// Label names on any sample.
    pub labels: BTreeSet<String>,
}

impl Exported {
    /// Adds the names of a Prometheus/OpenMetrics text exposition.
    pub fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                // A family declared without samples yet still exists; counters are queried
                // with their `_total` suffix.
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    match kind {
                        "counter" => self.metrics.insert(format!("{name}_total")),
                        "histogram" => {
                            for s in ["_bucket", "_sum", "_count"] {
                                self.metrics.insert(format!("{name}{s}"));
                            }
                            true
                        }
                        _ => self.metrics.insert(name.to_owned()),
                    };
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            self.metrics.insert(line[..end].to_owned());
            if let Some(open) = line.find('{') {
                let close = line.rfind('}').unwrap_or(line.len());
                let mut labels = BTreeSet::new();
                // Reuse the PromQL matcher reader: `a="x",b="y"` has the same shape.
                let selector = format!("m{{{}}}", &line[open + 1..close]);
                labels.extend(promql::refs(&selector).labels);
                self.labels.extend(labels);
            }
        }
    }

    /// Problems with `expr` (from `place`): unknown metrics or labels, or no metric at all.
    pub fn check_expr(&self, place: &str, expr: &str) -> Vec<String> {
        let refs = promql::refs(expr);
        let mut problems = Vec::new();
        if refs.metrics.is_empty() {
            problems.push(format!("{place}: `{expr}` selects no metric"));
        }
        for m in &refs.metrics {
            if !self.metrics.contains(m) && !promql::BUILTIN_SERIES.contains(&m.as_str()) {
                problems.push(format!("{place}: metric `{m}` is not exported"));
            }
        }
        for l in &refs.labels {
            if !self.labels.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
                problems.push(format!("{place}: label `{l}` is on no exported series"));
            }
        }
        problems
    }
}

/// Every PromQL expression of a Grafana dashboard, with where it is: panel targets (also in
/// collapsed rows) and template variable queries (`label_values(metric, label)`).
pub fn dashboard_exprs(dashboard: &serde_json::Value) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let panels = dashboard["panels"]
        .as_array()
        .context("dashboard without panels")?;
    let mut stack: Vec<&serde_json::Value> = panels.iter().collect();
    while let Some(p) = stack.pop() {
        if let Some(inner) = p["panels"].as_array() {
            stack.extend(inner);
        }
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("untitled");
        let targets = p["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            bail!("panel {title:?} has no query");
        }
        for t in targets {
            let expr = t["expr"]
                .as_str()
                .with_context(|| format!("panel {title:?}: target without expr"))?;
            out.push((format!("panel {title:?}"), expr.to_owned()));
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let name = v["name"].as_str().unwrap_or("?");
        let query = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or("");
        if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        {
            let (metric, label) = args
                .rsplit_once(',')
                .context("label_values needs two arguments")?;
            out.push((
                format!("variable ${name}"),
                format!("{}{{{}=\"\"}}", metric.trim(), label.trim()),
            ));
        }
    }
    Ok(out)
}

/// Every `expr` of a Prometheus rule file, with the rule's name.
pub fn rule_exprs(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let mut out = Vec::new();
    for g in doc["groups"]
        .as_sequence()
        .context("rule file without groups")?
    {
        for r in g["rules"].as_sequence().context("group without rules")? {
            let name = r["alert"]
                .as_str()
                .or_else(|| r["record"].as_str())
                .unwrap_or("?");
            let expr = r["expr"]
                .as_str()
                .with_context(|| format!("rule {name} without expr"))?;
            out.push((format!("rule {name}"), expr.to_owned()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Exported;

    const TEXT: &str = "# TYPE supernode_relay_relayed_bytes counter\n\
        supernode_relay_relayed_bytes_total{direction=\"client_to_peer\"} 10\n\
        # TYPE rendezvous_relays gauge\nrendezvous_relays 1\n# EOF\n";

    #[test]
    fn knows_exported_names() {
        let mut e = Exported::default();
        e.add(TEXT);
        assert!(
            e.check_expr(
                "t",
                "sum by (direction) (rate(supernode_relay_relayed_bytes_total[5m]))"
            )
            .is_empty()
        );
        assert!(e.check_expr("t", "max(rendezvous_relays) == 0").is_empty());
    }

    #[test]
    fn flags_unknown_metric_label_and_empty_query() {
        let mut e = Exported::default();
        e.add(TEXT);
        let p = e.check_expr("t", "rate(supernode_relay_relayed_bits_total[5m])");
        assert_eq!(
            p,
            ["t: metric `supernode_relay_relayed_bits_total` is not exported"]
        );
        let p = e.check_expr(
            "t",
            "sum by (dir) (rate(supernode_relay_relayed_bytes_total[5m]))",
        );
        assert_eq!(p, ["t: label `dir` is on no exported series"]);
        assert_eq!(e.check_expr("t", "vector(1)").len(), 1);
    }
}
