//! Multicast: group membership (any-source and source-specific) and the
//! sending options, as plain types; the socket calls are on
//! [`crate::Socket`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Which interface a multicast operation uses.
///
/// ```
/// use volley::MulticastInterface;
/// let by_index = MulticastInterface::Index(2);
/// let by_addr = MulticastInterface::V4("10.0.0.1".parse().unwrap());
/// assert_ne!(by_index, by_addr);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MulticastInterface {
    /// Let the kernel choose (by the routing table).
    #[default]
    Any,
    /// The interface with this index (`if_nametoindex`); IPv4 and IPv6.
    Index(u32),
    /// The IPv4 interface that has this address (IPv4 groups only).
    V4(Ipv4Addr),
}

impl fmt::Display for MulticastInterface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any interface"),
            Self::Index(i) => write!(f, "interface index {i}"),
            Self::V4(a) => write!(f, "interface with address {a}"),
        }
    }
}

/// Why a multicast operation was refused.
///
/// ```
/// use volley::{Error, MulticastError, MulticastInterface, Socket};
/// let sock = Socket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
/// match sock.join_multicast("10.1.2.3".parse().unwrap(), MulticastInterface::Any) {
///     Err(Error::Multicast { reason: MulticastError::NotMulticast, .. }) => {}
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MulticastError {
    /// The group address is not a multicast address (224.0.0.0/4, ff00::/8).
    NotMulticast,
    /// The group's family cannot be used on this socket (an IPv6 group on an
    /// IPv4 socket, an IPv4 group on an IPv6-only socket).
    GroupFamily,
    /// The source filter's family differs from the group's.
    SourceFamily,
    /// The interface does not exist (`ENODEV`), or no interface has that
    /// address (`EADDRNOTAVAIL`).
    NoSuchInterface,
    /// Interface by IPv4 address given for an IPv6 group.
    InterfaceFamily,
    /// A leave for a group the socket has not joined on that interface
    /// (`EADDRNOTAVAIL` on a leave).
    ///
    /// ```
    /// use volley::{Error, MulticastError, MulticastInterface, Socket};
    /// let sock = Socket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
    /// match sock.leave_multicast("239.1.2.3".parse().unwrap(), MulticastInterface::Any) {
    ///     Err(Error::Multicast { reason: MulticastError::NotMember, .. }) => {}
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    NotMember,
    /// The kernel refused for another reason (see the source error).
    Refused,
}

impl MulticastError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::NotMulticast => "not a multicast address",
            Self::GroupFamily => "group's address family cannot be used on this socket",
            Self::SourceFamily => "source address family differs from the group's",
            Self::NoSuchInterface => "no such interface",
            Self::InterfaceFamily => "an interface given by IPv4 address cannot serve an IPv6 group",
            Self::NotMember => "not a member of this group on that interface",
            Self::Refused => "refused by the kernel",
        }
    }
}

/// Checks a group (and source) against the socket's families; returns
/// whether the group is IPv4.
pub(crate) fn check(
    group: IpAddr,
    source: Option<IpAddr>,
    interface: MulticastInterface,
    carries_v4: bool,
    carries_v6: bool,
) -> Result<bool, MulticastError> {
    if !group.is_multicast() {
        return Err(MulticastError::NotMulticast);
    }
    let v4 = group.is_ipv4();
    if (v4 && !carries_v4) || (!v4 && !carries_v6) {
        return Err(MulticastError::GroupFamily);
    }
    if source.is_some_and(|s| s.is_ipv4() != v4) {
        return Err(MulticastError::SourceFamily);
    }
    if !v4 && matches!(interface, MulticastInterface::V4(_)) {
        return Err(MulticastError::InterfaceFamily);
    }
    Ok(v4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn interfaces_read_as_words() {
        assert_eq!(MulticastInterface::Any.to_string(), "any interface");
        assert_eq!(MulticastInterface::Index(3).to_string(), "interface index 3");
        assert_eq!(MulticastInterface::V4(Ipv4Addr::new(10, 0, 0, 1)).to_string(), "interface with address 10.0.0.1");
    }

    #[test]
    fn every_refusal_says_its_own_reason() {
        use MulticastError::*;
        let all = [NotMulticast, GroupFamily, SourceFamily, NoSuchInterface, InterfaceFamily, NotMember, Refused];
        let group: IpAddr = "239.1.2.3".parse().unwrap();
        let texts: Vec<String> =
            all.iter().map(|&reason| Error::Multicast { group, reason, source: None }.to_string()).collect();
        for (reason, text) in all.iter().zip(&texts) {
            assert!(text.starts_with("multicast group 239.1.2.3: "), "{reason:?}: {text}");
            assert!(text.len() > "multicast group 239.1.2.3: ".len() + 8, "{reason:?}: {text}");
            assert_eq!(texts.iter().filter(|t| *t == text).count(), 1, "{reason:?} reads like another: {text}");
        }
        assert_eq!(texts[5], "multicast group 239.1.2.3: not a member of this group on that interface");
    }
}
