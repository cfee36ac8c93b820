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
    table::write_doc_section(table::KINDS_SECTION, &markdown).unwrap();
    let wrong: Vec<_> = rows.iter().filter(|r| !r.mismatches.is_empty()).collect();
    assert!(wrong.is_empty(), "kinds not as claimed: {wrong:#?}");
    for r in &rows {
        if let Some(reached) = r.hairpin_measured {
            assert_eq!(reached, r.hairpin_configured, "{} hairpin", r.kind.name());
        }
    }
}
