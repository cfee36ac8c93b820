//! Measures every NAT kind in one lab, prints the table and checks every row is as claimed.
//! With `NATLAB_WRITE_DOC=1` it also rewrites the table in `docs/nat-lab.md`.

mod common;

use supernode_natlab::{require_root, table};

#[test]
fn nat_kind_table() {
    if !require_root() {
        return;
    }
    let started = std::time::Instant::now();
    let rows = table::measure_all(&common::probe()).unwrap();
    let markdown = table::markdown(&rows);
    println!("\n{markdown}\nmeasured in {:?}", started.elapsed());
    if std::env::var("NATLAB_WRITE_DOC").is_ok_and(|v| v == "1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/nat-lab.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let updated = table::splice(&doc, &markdown).expect("table markers in docs/nat-lab.md");
        std::fs::write(path, updated).unwrap();
        println!("wrote {path}");
    }
    let wrong: Vec<_> = rows.iter().filter(|r| !r.mismatches.is_empty()).collect();
    assert!(wrong.is_empty(), "kinds not as claimed: {wrong:#?}");
    for r in &rows {
        if let Some(reached) = r.hairpin_measured {
            assert_eq!(reached, r.hairpin_configured, "{} hairpin", r.kind.name());
        }
    }
}
