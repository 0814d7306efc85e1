//! Which `Callback-Url` targets we agree to call.
//!
//! A webhook is a request our servers send to a URL a client chose, so it is
//! a server-side request forgery risk: without a check a client could make
//! the worker post to the cloud metadata service or an internal admin port.
//! We refuse private, loopback, link-local and other special addresses unless
//! configuration allows them; the webhook sender checks resolved addresses
//! again with [`ip_allowed`] at delivery time (DNS can point anywhere).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// What configuration allows beyond public https targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackRules {
    pub allow_private: bool,
    /// Also allows plain `http://` for loopback targets (local development).
    pub allow_loopback: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("Callback-Url is not an absolute URL: {0}")]
    Malformed(String),
    #[error("Callback-Url must use https")]
    NotHttps,
    #[error("Callback-Url must not carry credentials")]
    Credentials,
    #[error("Callback-Url targets a {0} address, which is not allowed")]
    Forbidden(&'static str),
}

/// Validates a `Callback-Url` header value and returns it normalised.
pub fn validate(raw: &str, rules: CallbackRules) -> Result<Url, CallbackError> {
    let url = Url::parse(raw.trim()).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CallbackError::Credentials);
    }
    let loopback = match url.host() {
        None => return Err(CallbackError::Malformed("no host".into())),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => {
            check_ip(IpAddr::V4(ip), rules)?;
            ip.is_loopback()
        }
        Some(Host::Ipv6(ip)) => {
            check_ip(IpAddr::V6(ip), rules)?;
            ip.is_loopback()
        }
    };
    if loopback && !rules.allow_loopback {
        return Err(CallbackError::Forbidden("loopback"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback && rules.allow_loopback => Ok(url),
        _ => Err(CallbackError::NotHttps),
    }
}

/// Whether the worker may connect to this resolved address.
pub fn ip_allowed(ip: IpAddr, rules: CallbackRules) -> bool {
    check_ip(ip, rules).is_ok()
}

fn check_ip(ip: IpAddr, rules: CallbackRules) -> Result<(), CallbackError> {
    match classify(ip) {
        None => Ok(()),
        Some("loopback") if rules.allow_loopback => Ok(()),
        Some("private") if rules.allow_private => Ok(()),
        Some(kind) => Err(CallbackError::Forbidden(kind)),
    }
}

fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // An IPv6 address that reaches an IPv4 one is judged as that
            // one: else `[64:ff9b::a9fe:a9fe]` would reach the metadata
            // service through a NAT64 gateway.
            Some(v4) => classify_v4(v4).or(classify_v6(v6)),
            None => classify_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (`::ffff:0:0/96`),
/// IPv4-compatible (`::/96`, deprecated), NAT64 (`64:ff9b::/96` and the
/// local-use `64:ff9b:1::/48`) and 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_loopback() && !ip.is_unspecified() => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918 and the carrier-grade NAT range.
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.0.0/16: the metadata service lives here.
        Some("link-local")
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 || a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Some("reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: CallbackRules = CallbackRules {
        allow_private: false,
        allow_loopback: false,
    };
    const LOCAL: CallbackRules = CallbackRules {
        allow_private: false,
        allow_loopback: true,
    };

    #[test]
    fn public_https_is_fine() {
        assert!(validate("https://hooks.example.com/x", STRICT).is_ok());
        assert!(validate("https://93.184.216.34/x", STRICT).is_ok());
        // Public IPv4 inside IPv6 is as fine as the IPv4 itself.
        assert!(validate("https://[64:ff9b::5db8:d822]/x", STRICT).is_ok());
        assert!(validate("https://[2002:5db8:d822::1]/x", STRICT).is_ok());
        assert!(validate("https://[2606:4700::1111]/x", STRICT).is_ok());
    }

    #[test]
    fn special_targets_are_refused() {
        for bad in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://localhost:8443/x",
            "https://10.1.2.3/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fe80::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            // IPv4 inside IPv6: NAT64, its local-use prefix, 6to4 and
            // IPv4-compatible, each reaching a refused IPv4 address.
            "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",
            "https://[64:ff9b:1::7f00:1]/x",
            "https://[2002:a9fe:a9fe::1]/x",
            "https://[2002:0a00:0001::]/x",
            "https://[::10.0.0.1]/x",
            "https://0.0.0.0/x",
            "https://user:pw@example.com/x",
            "ftp://example.com/x",
            "not a url",
        ] {
            assert!(validate(bad, STRICT).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn local_mode_allows_loopback_over_http() {
        assert!(validate("http://127.0.0.1:9000/hook", LOCAL).is_ok());
        assert!(validate("http://localhost:9000/hook", LOCAL).is_ok());
        assert!(validate("http://example.com/hook", LOCAL).is_err());
        assert!(validate("https://10.0.0.1/hook", LOCAL).is_err());
    }
}
