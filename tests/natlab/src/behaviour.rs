//! NAT behaviour vocabulary of RFC 4787, shared by the lab (what a site is configured to be)
//! and the probe (what was measured).

use std::fmt;

/// How a NAT maps an internal endpoint to external ones (RFC 4787 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// The same external address and port for every destination ("cone" NATs, and no NAT).
    EndpointIndependent,
    /// A new mapping per destination IP address.
    AddressDependent,
    /// A new mapping per destination IP address and port ("symmetric").
    AddressAndPortDependent,
}

/// Which inbound packets a NAT lets through to a mapping (RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtering {
    /// Any source may send to the mapping ("full cone").
    EndpointIndependent,
    /// Only IP addresses the inside has sent to ("restricted cone").
    AddressDependent,
    /// Only exact address and port pairs the inside has sent to ("port-restricted").
    AddressAndPortDependent,
}

/// How external ports are chosen for new mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAllocation {
    /// The external port equals the internal one.
    Preserved,
    /// Each new mapping takes the next port (small positive steps).
    Sequential,
    /// Ports are spread at random.
    Random,
}

/// Implements the kebab-case names used in JSON, tables and on the command line.
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            /// Short kebab-case name.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            /// Parses [`Self::name`] back.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

names!(Mapping {
    EndpointIndependent => "endpoint-independent",
    AddressDependent => "address-dependent",
    AddressAndPortDependent => "address-and-port-dependent",
});

names!(Filtering {
    EndpointIndependent => "endpoint-independent",
    AddressDependent => "address-dependent",
    AddressAndPortDependent => "address-and-port-dependent",
});

names!(PortAllocation {
    Preserved => "preserved",
    Sequential => "sequential",
    Random => "random",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mapping::ALL {
            assert_eq!(Mapping::from_name(m.name()), Some(*m));
        }
        for f in Filtering::ALL {
            assert_eq!(Filtering::from_name(&f.to_string()), Some(*f));
        }
        for p in PortAllocation::ALL {
            assert_eq!(PortAllocation::from_name(p.name()), Some(*p));
        }
        assert_eq!(Mapping::from_name("cone"), None);
    }
}
