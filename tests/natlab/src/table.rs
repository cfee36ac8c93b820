//! The NAT kind → measured behaviour table printed by the table test and kept in
//! `docs/nat-lab.md`.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

use crate::lab::Lab;
use crate::measure::{self, TCP_PORTS};
use crate::nat::NatKind;
use crate::probe::classify::Report;
use crate::probe::client::Servers;
use crate::topology::{Public, Site, Topology};

/// The command that regenerates the table in `docs/nat-lab.md` (as root).
pub const REGENERATE: &str =
    "NATLAB_WRITE_DOC=1 cargo test -p supernode-natlab --test table -- --nocapture";

/// One measured site.
#[derive(Debug, Clone)]
pub struct Row {
    /// The configured kind.
    pub kind: NatKind,
    /// Whether hairpinning was configured on.
    pub hairpin_configured: bool,
    /// What the probe measured from the site's first host.
    pub report: Report,
    /// Whether the first host reached the second via its public mapping, where that test
    /// applies (a NAT that passes UDP).
    pub hairpin_measured: Option<bool>,
    /// Disagreements with [`NatKind::expected`]; empty when the lab built what it claims.
    pub mismatches: Vec<String>,
}

/// The sites of the table lab: every kind with hairpinning off, plus a masquerade NAT with it
/// on. Each site has two hosts for the hairpin test.
pub fn topology() -> Topology {
    let mut t = Topology::new().public(Public::new("rv").addrs(2));
    for kind in NatKind::ALL {
        t = t.site(Site::new(&kind.name().replace('-', ""), kind).hosts(2));
    }
    t.site(Site::new("hp", NatKind::EimApdf).hosts(2).hairpin(true))
}

/// Builds the table lab and measures every site, in parallel.
pub fn measure_all(probe: &Path) -> Result<Vec<Row>> {
    let lab = Lab::start(&topology())?;
    let reflector = measure::start_reflector(&lab, "rv", probe)?;
    let servers = reflector.servers;
    std::thread::scope(|scope| {
        let handles: Vec<_> = lab
            .sites()
            .iter()
            .map(|site| scope.spawn(|| measure_site(&lab, site.name(), probe, servers)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("measuring thread panicked"))?
            })
            .collect()
    })
}

/// Measures one site of the table lab.
fn measure_site(lab: &Lab, site: &str, probe: &Path, servers: Servers) -> Result<Row> {
    let info = lab.site(site);
    let hosts = info.hosts();
    let report = measure::classify_from(lab, &hosts[0], probe, servers)?;
    let hairpin_measured = if info.kind() != NatKind::Public && report.udp {
        Some(measure::hairpin(lab, &hosts[0], &hosts[1], probe, servers)?.reached)
    } else {
        None
    };
    Ok(Row {
        kind: info.kind(),
        hairpin_configured: info.hairpin(),
        mismatches: measure::mismatches(info.kind(), &report),
        report,
        hairpin_measured,
    })
}

/// Name of the generated NAT kind table's section in `docs/nat-lab.md`.
pub const KINDS_SECTION: &str = "natlab-table";
/// Name of the generated rendezvous discovery section in `docs/nat-lab.md`.
pub const DISCOVERY_SECTION: &str = "natlab-discovery";

/// Path of `docs/nat-lab.md` in the source tree.
pub const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/nat-lab.md");

/// Replaces the text between the `<!-- {section}:start -->` and `<!-- {section}:end -->`
/// markers in `doc` with `text`.
pub fn splice(doc: &str, section: &str, text: &str) -> Option<String> {
    let (open, close) = (
        format!("<!-- {section}:start -->"),
        format!("<!-- {section}:end -->"),
    );
    let start = doc.find(&open)? + open.len();
    let end = doc.find(&close)?;
    (start <= end).then(|| format!("{}\n{text}{}", &doc[..start], &doc[end..]))
}

/// With `NATLAB_WRITE_DOC=1`, rewrites `section` of `docs/nat-lab.md` with `text`.
pub fn write_doc_section(section: &str, text: &str) -> Result<()> {
    if !std::env::var("NATLAB_WRITE_DOC").is_ok_and(|v| v == "1") {
        return Ok(());
    }
    let doc = std::fs::read_to_string(DOC_PATH)?;
    let updated = splice(&doc, section, text)
        .with_context(|| format!("no {section} markers in {DOC_PATH}"))?;
    std::fs::write(DOC_PATH, updated)?;
    println!("wrote {DOC_PATH}");
    Ok(())
}

/// Renders rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| NAT kind | configured as | mapping | filtering | ports | hops | UDP | TCP 443 | TCP 80 | hairpin | as claimed |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    let yes = |b: bool| if b { "yes" } else { "no" }.to_owned();
    for r in rows {
        let rep = &r.report;
        let hairpin = match r.hairpin_measured {
            Some(m) => format!(
                "{} (configured {})",
                yes(m),
                if r.hairpin_configured { "on" } else { "off" }
            ),
            None => "n/a".into(),
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.kind.name(),
            r.kind.description(),
            opt(rep.mapping.map(|m| m.to_string())),
            opt(rep.filtering.map(|f| f.to_string())),
            opt(rep.allocation.map(|p| p.to_string())),
            opt(rep.observations.hops.map(|h| h.to_string())),
            yes(rep.udp),
            opt(rep.tcp(TCP_PORTS[0]).map(yes)),
            opt(rep.tcp(TCP_PORTS[1]).map(yes)),
            hairpin,
            if r.mismatches.is_empty() {
                "yes".to_owned()
            } else {
                format!("**no**: {}", r.mismatches.join("; "))
            },
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_the_marked_part() {
        let doc = "intro\n<!-- t:start -->\nold\n<!-- t:end -->\noutro\n";
        let new = splice(doc, "t", "| new |\n").unwrap();
        assert_eq!(
            new,
            "intro\n<!-- t:start -->\n| new |\n<!-- t:end -->\noutro\n"
        );
        assert_eq!(splice("no markers", "t", "x"), None);
        assert_eq!(splice(doc, "other", "x"), None);
    }
}
