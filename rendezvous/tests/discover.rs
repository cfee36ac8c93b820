//! The `discover` subcommand against a node on loopback prints a machine-readable report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Node;

#[tokio::test]
async fn discover_subcommand_prints_json() {
    let node = Node::start(true, |_| {}).await;
    let server = node.primary();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_supernode-rendezvous"))
            .args([
                "discover",
                "--server",
                &server.to_string(),
                "--bind",
                "127.0.0.1:0",
                "--json",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["nat"], false, "{report}");
    assert_eq!(report["alternate_ip"], true, "{report}");
    assert_eq!(report["mapping"], "endpoint-independent", "{report}");
    assert_eq!(report["filtering"], "endpoint-independent", "{report}");
    assert_eq!(report["other_address"], node.udp[3].to_string());
    node.stop().await;
}
