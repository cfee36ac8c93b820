//! The metric and label names a PromQL expression refers to.
//!
//! Not a PromQL parser: a tokenizer that knows enough of the syntax to tell metric names from
//! functions, aggregations, keywords, label names, strings, ranges and Grafana variables.
//! That is what checking a dashboard or rule file against real metrics needs.

use std::collections::BTreeSet;

/// Words that are operators or modifiers, never metric names.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
];
/// Aggregation operators (which may be followed by `by (...)` before their parentheses).
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Series every Prometheus has without any exporter.
pub const BUILTIN_SERIES: &[&str] = &[
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "scrape_duration_seconds",
];

/// Names found in one expression.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refs {
    /// Metric names selected.
    pub metrics: BTreeSet<String>,
    /// Label names matched (`{name=...}`) or grouped by (`by (name)`).
    pub labels: BTreeSet<String>,
}

/// The metric and label names `expr` refers to.
pub fn refs(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = Refs::default();
    let mut i = 0;
    // Set after `by`/`without`/`on`/`ignoring`/`group_*`: the next (...) lists label names.
    let mut label_list_next = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            // A range or subquery duration: `[5m]`, `[$__rate_interval]`.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            i = matchers(&chars, i + 1, &mut refs.labels);
        } else if c == '(' && label_list_next {
            label_list_next = false;
            let start = i + 1;
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            let list: String = chars[start..i.min(chars.len())].iter().collect();
            refs.labels.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
            i += 1;
        } else if c == '$' {
            // A Grafana variable.
            i += 1;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let next = chars.get(j).copied();
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&word.as_str())
            {
                label_list_next = true;
            } else if KEYWORDS.contains(&word.as_str())
                || AGGREGATIONS.contains(&word.as_str())
                || next == Some('(')
            {
                // A keyword, an aggregation or a function call.
            } else {
                refs.metrics.insert(word);
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// Reads label matchers after `{` up to the closing `}`; returns the index after it.
fn matchers(chars: &[char], mut i: usize, labels: &mut BTreeSet<String>) -> usize {
    while i < chars.len() && chars[i] != '}' {
        if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
            i = skip_string(chars, i);
        } else if is_ident_start(chars[i]) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            labels.insert(chars[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    i + 1
}

/// Index after the string literal starting at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

#[cfg(test)]
mod tests {
    use super::refs;

    fn set(v: &[&str]) -> std::collections::BTreeSet<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn finds_metrics_and_labels() {
        let r = refs(
            r#"sum by (reason) (rate(supernode_relay_dropped_packets_total{instance=~"$instance",reason!="x"}[$__rate_interval])) * 8"#,
        );
        assert_eq!(r.metrics, set(&["supernode_relay_dropped_packets_total"]));
        assert_eq!(r.labels, set(&["instance", "reason"]));
    }

    #[test]
    fn keywords_functions_and_strings_are_not_metrics() {
        let r = refs(
            r#"(sum(up{job="supernode-relay"}) or vector(0)) == 0 or max(rendezvous_relays) == 0"#,
        );
        assert_eq!(r.metrics, set(&["up", "rendezvous_relays"]));
        assert_eq!(r.labels, set(&["job"]));
        let r = refs("max by (relay) (rendezvous_relay_load_permille) > 800");
        assert_eq!(r.metrics, set(&["rendezvous_relay_load_permille"]));
        assert_eq!(r.labels, set(&["relay"]));
    }

    #[test]
    fn a_typo_is_a_metric_name() {
        let r = refs("rate(supernode_relay_relayed_byte_total[5m])");
        assert_eq!(r.metrics, set(&["supernode_relay_relayed_byte_total"]));
    }
}
