//! `promtool` accepts the Prometheus configuration and alert rules in `deploy/prometheus/`,
//! and the rules' unit tests (`rules.test.yml`) pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use supernode_deploy_tests::env;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(env::deploy_dir())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_accepts_config_rules_and_rule_tests() {
    if let Err(e) = env::ensure_tool("promtool", "prometheus") {
        env::skip(&e.to_string());
        return;
    }
    let config = promtool(&["check", "config", "prometheus/prometheus.yml"]);
    // The config's rule_files glob must have found the rules, not matched nothing.
    assert!(config.contains("rule files found"), "{config}");
    assert!(!config.contains(" 0 rule files found"), "{config}");

    let rule_files: Vec<String> = std::fs::read_dir(env::deploy_dir().join("prometheus/rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    assert!(!rule_files.is_empty());
    let mut args = vec!["check", "rules"];
    args.extend(rule_files.iter().map(String::as_str));
    let rules = promtool(&args);
    assert!(rules.contains("SUCCESS"), "{rules}");

    let tests = promtool(&["test", "rules", "prometheus/rules.test.yml"]);
    assert!(tests.contains("SUCCESS"), "{tests}");
}
