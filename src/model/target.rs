//! Outbound targets: which hosts a URL given by a user may name. Pure checks, no lookups.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a URL's host is not an acceptable outbound target, or None if it is.
pub fn refused_host(url: &url::Url, allow_private: bool) -> Option<String> {
    let host = match url.host() {
        None => return Some("has no host".into()),
        // An ssh:// URL's host is opaque to the url crate: an address arrives as a name.
        Some(url::Host::Domain(name)) => match name.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let local = name == "localhost" || name.ends_with(".localhost");
                // 127.1, 0x7f.0.0.1, 2130706433: addresses resolvers accept in odd forms.
                let numeric = name.starts_with(|c: char| c.is_ascii_digit())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == '.' || c == 'x');
                return ((local || numeric) && !allow_private)
                    .then(|| format!("names {name}, a loopback or numeric host"));
            }
        },
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    if is_unspecified_or_multicast(host) {
        return Some(format!("names {host}, which is not a host"));
    }
    (is_internal(host) && !allow_private).then(|| {
        format!(
            "names {host}, a loopback, link-local or private address; set inputs.allow_private_targets to allow it"
        )
    })
}

/// A git remote as a URL: `https://…` and `ssh://…` as written, git's scp-like
/// `user@host:path` read as `ssh://user@host/path`.
pub fn parse_git_remote(value: &str) -> Result<url::Url, url::ParseError> {
    let scp_like = value
        .split_once(':')
        .filter(|(host, path)| host.contains('@') && !host.contains('/') && !path.is_empty())
        .map(|(host, path)| format!("ssh://{host}/{}", path.trim_start_matches('/')));
    url::Url::parse(scp_like.as_deref().unwrap_or(value))
}

/// True for an address aiops may dial for a target people name: not inside the host or its
/// network, and a host at all (not multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    !is_internal(ip) && !is_unspecified_or_multicast(ip)
}

/// True for an address inside the host or its network: loopback, link-local (cloud metadata
/// services), private, shared (CGNAT) and unique-local ranges.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || (a == 100 && (64..128).contains(&b))
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

fn is_unspecified_or_multicast(ip: IpAddr) -> bool {
    ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str, allow: bool) -> bool {
        refused_host(&url::Url::parse(url).unwrap(), allow).is_some()
    }

    #[test]
    fn internal_targets_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/x",
            "https://localhost:8080/x",
            "http://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://172.16.5.4/",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            assert!(refused(url, false), "{url}");
            assert!(!refused(url, true), "{url}");
        }
        assert!(refused("https://0.0.0.0/", true));
        assert!(refused("ssh://git@127.0.0.1/r.git", false));
        assert!(refused("ssh://git@2130706433/r.git", false));
        assert!(!refused("https://github.com/o/r.git", false));
        assert!(!refused("https://8.8.8.8/", false));
    }
}
