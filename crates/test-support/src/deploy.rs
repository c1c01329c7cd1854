//! The Grafana dashboard and the alert rules in `deploy/`: the PromQL queries they run and the
//! metric names those queries need, to check them against a real `/metrics` page.

use std::collections::BTreeSet;

use serde_json::Value;

/// The metric names that the dashboard and the alert rules need (Kubernetes' own
/// `kube_*` metrics, from kube-state-metrics, left out).
pub fn wanted_metrics() -> BTreeSet<String> {
    dashboard_queries()
        .iter()
        .chain(&alert_queries())
        .flat_map(|query| metric_names(query))
        .filter(|name| !name.starts_with("kube_"))
        .collect()
}

/// The text of `deploy/<path>`.
pub fn deploy_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PromQL queries of the dashboard's panels.
pub fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&deploy_file("grafana/taskvault.json")).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    queries
}

/// The `expr:` lines of the alert rules (each on one line, as the file's header asks).
pub fn alert_queries() -> Vec<String> {
    let queries: Vec<String> = deploy_file("k8s/alerts.yaml")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr:"))
        .map(|expr| expr.trim().to_owned())
        .collect();
    assert!(queries.len() >= 5, "{queries:?}");
    queries
}

/// Metric names in a PromQL query: identifiers that are not functions, keywords, label names
/// or durations.
pub fn metric_names(query: &str) -> BTreeSet<String> {
    let mut text = String::new();
    // Drop label matchers `{...}`, ranges `[...]` and strings.
    let mut depth = 0;
    let mut in_string = false;
    for c in query.chars() {
        match c {
            '"' => in_string = !in_string,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => depth -= 1,
            _ if in_string || depth > 0 => {}
            _ => text.push(c),
        }
        if depth > 0 || in_string {
            continue;
        }
        if matches!(c, '}' | ']' | '"') {
            text.push(' ');
        }
    }
    // Aggregations may be followed by `by (...)` rather than by their parenthesis.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
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
    ];
    let mut names = BTreeSet::new();
    let mut skip_group = false;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if KEYWORDS.contains(&word.as_str()) {
                // `by (le, type)`: the parenthesised names are labels.
                skip_group = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
            } else if next != Some(&'(') && !AGGREGATIONS.contains(&word.as_str()) {
                names.insert(word);
            }
            continue;
        }
        if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
        }
        if c.is_ascii_digit() || c == '.' {
            // Numbers such as 0.99 or 1e-9.
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-'))
            {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Metric names on a Prometheus text page.
pub fn exported(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_read_from_queries() {
        assert_eq!(
            metric_names(
                r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{status=~"5.."}[$__rate_interval])))"#
            ),
            BTreeSet::from(["http_request_duration_seconds_bucket".to_owned()])
        );
        assert_eq!(
            metric_names(
                r#"sum(rate(a_total{x="y"}[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0.2 and max(c) > 1000"#
            ),
            BTreeSet::from(["a_total".to_owned(), "b_total".to_owned(), "c".to_owned()])
        );
    }
}
