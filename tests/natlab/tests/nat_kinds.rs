//! For each NAT kind, the independent probe measures what the kind's name claims.

mod common;

use supernode_natlab::{NatKind, require_root};

#[test]
fn public_host_is_not_translated() {
    if require_root() {
        common::assert_kind(NatKind::Public);
    }
}

#[test]
fn full_cone() {
    if require_root() {
        common::assert_kind(NatKind::EimEif);
    }
}

#[test]
fn restricted_cone() {
    if require_root() {
        common::assert_kind(NatKind::EimAdf);
    }
}

#[test]
fn port_restricted_cone() {
    if require_root() {
        common::assert_kind(NatKind::EimApdf);
    }
}

#[test]
fn symmetric_sequential() {
    if require_root() {
        common::assert_kind(NatKind::ApdmSequential);
    }
}

#[test]
fn symmetric_random() {
    if require_root() {
        common::assert_kind(NatKind::ApdmRandom);
    }
}
