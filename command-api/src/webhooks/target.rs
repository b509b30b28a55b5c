//! Which URLs a webhook may point at, and which address a delivery may connect to.
//!
//! Unless `AGORA_WEBHOOK_ALLOW_INSECURE=true` (development and tests, which also allows
//! `http` and loopback or private addresses), a webhook URL must be `https` to a public
//! host, checked twice:
//!
//! - **At subscription** ([`check_url`]): the scheme, no credentials, no IP literal of a
//!   special-use range ([`is_public`]), no name that is local by convention (`localhost`,
//!   `*.local`, `*.internal`, single labels, ...).
//! - **At each delivery round** ([`pin`]): the same checks, then the host is resolved and
//!   refused if ANY of its addresses is special-use ([`pick_address`]); the request then
//!   connects to exactly that checked address (the HTTP client never looks the name up
//!   again). A name that answered a public address when it was subscribed and answers
//!   `127.0.0.1` later (DNS rebinding) reaches nothing.
//!
//! This keeps an admin token from turning deliveries into requests against the internal
//! network (SSRF), by name, by IP literal or by rebinding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// How long resolving a webhook's host may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks `url`; the reason when it is refused.
pub fn check_url(url: &str, allow_insecure: bool) -> Result<Url, String> {
    if url.len() > 2048 {
        return Err("url: at most 2048 characters".into());
    }
    let parsed = Url::parse(url).map_err(|e| format!("url: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        other => return Err(format!("url: must be https (got {other})")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url: must not carry credentials".into());
    }
    let Some(host) = host_of(&parsed) else {
        return Err("url: needs a host".into());
    };
    if allow_insecure {
        return Ok(parsed);
    }
    match host {
        Host::Ip(ip) => refuse_special(ip)?,
        Host::Name(name) => {
            if is_local_name(name) {
                return Err(format!("url: {name} is not a public host name"));
            }
        }
    }
    Ok(parsed)
}

/// A URL's host: an IP literal or a name.
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

fn host_of(url: &Url) -> Option<Host<'_>> {
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(host),
    })
}

fn refuse_special(ip: IpAddr) -> Result<(), String> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(format!("url: {ip} is not a public address"))
    }
}

/// True for names that are local by convention (never resolved in public DNS, or meant
/// for this host or its network): `localhost`, `*.localhost`, `localhost.localdomain`,
/// `*.localdomain`, `*.local`, `*.internal`, `*.home.arpa`, and single-label names.
pub fn is_local_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let lower = lower.trim_end_matches('.');
    const LOCAL: [&str; 5] = ["localhost", "localdomain", "local", "internal", "home.arpa"];
    !lower.contains('.')
        || LOCAL
            .iter()
            .any(|suffix| lower == *suffix || lower.ends_with(&format!(".{suffix}")))
}

/// False for every special-use address: loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking, reserved, protocol
/// assignments and relay/translation prefixes (whose packets may end up on an internal
/// IPv4 network). IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible (`::/96`) IPv6
/// addresses are judged by their embedded IPv4 address; NAT64 and 6to4 ones are refused
/// whatever they embed. IPv6 outside global unicast `2000::/3` is refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    !(a == 0 // "this network" 0.0.0.0/8, unspecified included
        || a == 10 // private 10/8
        || a == 127 // loopback 127/8
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT) 100.64/10
        || (a == 169 && b == 254) // link-local 169.254/16 (cloud metadata)
        || (a == 172 && (16..32).contains(&b)) // private 172.16/12
        || (a == 192 && b == 168) // private 192.168/16
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 2) // documentation TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast 192.88.99/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // documentation TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // documentation TEST-NET-3
        || a >= 224) // multicast 224/4, reserved 240/4, broadcast
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    // IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96 (:: and ::1 included, whose
    // embedded 0.0.0.0 and 0.0.0.1 are in 0/8): the embedded IPv4 address decides.
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // Only global unicast 2000::/3: this refuses loopback, unspecified, NAT64
    // 64:ff9b::/96 and 64:ff9b:1::/48, discard-only 100::/64, unique-local fc00::/7,
    // link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, and unassigned space.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let special = match s[0] {
        // IETF protocol assignments 2001::/23 (Teredo 2001::/32, benchmarking
        // 2001:2::/48, ORCHID 2001:10::/28, ORCHIDv2 2001:20::/28, ...) and documentation
        // 2001:db8::/32.
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // 6to4 2002::/16 (whatever IPv4 address it embeds).
        0x2002 => true,
        // Documentation 3fff::/20.
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    !special
}

/// Why a resolved target is refused (for the logs only: deliveries record one fixed text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The name resolved to no address.
    NoAddress,
    /// One of the addresses is special-use.
    Special(IpAddr),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NoAddress => write!(f, "the host resolved to no address"),
            Refused::Special(ip) => write!(f, "the host resolved to special-use address {ip}"),
        }
    }
}

/// The address to connect to, out of everything the host resolved to: refused when there
/// is none or when ANY is special-use (a name that answers a public and an internal
/// address may not be used to reach either), else the first.
pub fn pick_address(resolved: &[SocketAddr]) -> Result<SocketAddr, Refused> {
    if let Some(special) = resolved.iter().find(|addr| !is_public(addr.ip())) {
        return Err(Refused::Special(special.ip()));
    }
    resolved.first().copied().ok_or(Refused::NoAddress)
}

/// A checked delivery target: connect to `addr` for `host` (TLS verified and SNI sent for
/// `host`); `host` is `None` for an IP literal (then `addr` is that literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub url: Url,
    pub host: Option<String>,
    pub addr: SocketAddr,
}

/// Checks `url` as [`check_url`] does (without insecure), resolves its host and picks the
/// address with [`pick_address`]. The reason when refused, for the logs only.
pub async fn pin(url: &str) -> Result<Pinned, String> {
    let url = check_url(url, false)?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "url: no port".to_owned())?;
    let (host, resolved) = match host_of(&url) {
        Some(Host::Ip(ip)) => (None, vec![SocketAddr::new(ip, port)]),
        Some(Host::Name(name)) => (Some(name.to_owned()), resolve(name, port).await?),
        None => return Err("url: needs a host".into()),
    };
    let addr = pick_address(&resolved).map_err(|refused| refused.to_string())?;
    Ok(Pinned { url, host, addr })
}

/// Every address `name` resolves to (with the system resolver), within
/// [`RESOLVE_TIMEOUT`].
async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((name, port));
    Ok(tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| format!("resolving {name} took more than {RESOLVE_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot resolve {name}: {e}"))?
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(addresses: &[&str]) {
        for address in addresses {
            let ip: IpAddr = address.parse().unwrap_or_else(|_| panic!("{address}"));
            assert!(!is_public(ip), "{address} must be refused");
        }
    }

    fn allowed(addresses: &[&str]) {
        for address in addresses {
            let ip: IpAddr = address.parse().unwrap_or_else(|_| panic!("{address}"));
            assert!(is_public(ip), "{address} must be allowed");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        allowed(&[
            "3ffe:1000::1",
            "3fff:1000::1",
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.88.98.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
            "2001:200::1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
        ]);
    }

    #[test]
    fn loopback() {
        refused(&["127.0.0.1", "127.1.2.3", "127.255.255.255", "::1"]);
        refused(&["::ffff:127.0.0.1", "::127.0.0.1", "::ffff:7f00:1"]);
    }

    #[test]
    fn private() {
        refused(&["10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255"]);
        refused(&[
            "192.168.0.1",
            "192.168.255.255",
            "::ffff:10.0.0.1",
            "::192.168.1.1",
        ]);
    }

    #[test]
    fn link_local() {
        refused(&["169.254.169.254", "169.254.0.1", "::ffff:169.254.169.254"]);
        refused(&["fe80::1", "fe80::abcd:1234", "febf:ffff::1"]);
    }

    #[test]
    fn shared_address_space_cgnat() {
        refused(&["100.64.0.1", "100.127.255.255", "100.100.100.200"]);
        refused(&["::ffff:100.64.0.1"]);
    }

    #[test]
    fn unspecified_and_this_network() {
        refused(&[
            "0.0.0.0",
            "0.1.2.3",
            "0.255.255.255",
            "::",
            "::ffff:0.0.0.0",
        ]);
    }

    #[test]
    fn broadcast_and_reserved() {
        refused(&[
            "255.255.255.255",
            "240.0.0.1",
            "250.1.2.3",
            "::ffff:255.255.255.255",
        ]);
    }

    #[test]
    fn multicast() {
        refused(&["224.0.0.1", "239.255.255.250", "::ffff:224.0.0.251"]);
        refused(&["ff02::1", "ff05::2", "ff0e::1"]);
    }

    #[test]
    fn documentation() {
        refused(&["192.0.2.1", "198.51.100.7", "203.0.113.200"]);
        refused(&["2001:db8::1", "2001:db8:ffff::1", "3fff::1", "3fff:fff::1"]);
    }

    #[test]
    fn benchmarking() {
        refused(&["198.18.0.1", "198.19.255.255", "2001:2::1"]);
    }

    #[test]
    fn ietf_protocol_assignments() {
        refused(&["192.0.0.1", "192.0.0.170", "192.0.0.255", "2001:1::1"]);
    }

    #[test]
    fn six_to_four_relay_anycast() {
        refused(&["192.88.99.1", "192.88.99.255"]);
    }

    #[test]
    fn nat64() {
        refused(&["64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::808:808"]);
        refused(&["64:ff9b:1::1", "64:ff9b:1:ffff::7f00:1"]);
    }

    #[test]
    fn six_to_four() {
        refused(&["2002:7f00:1::", "2002:a00:1::1", "2002:808:808::1"]);
    }

    #[test]
    fn ipv4_mapped_and_compatible_judge_the_embedded_address() {
        refused(&[
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
        ]);
        refused(&[
            "::127.0.0.1",
            "::10.1.2.3",
            "::169.254.169.254",
            "::0.0.0.1",
        ]);
        allowed(&["::ffff:93.184.216.34", "::93.184.216.34"]);
    }

    #[test]
    fn site_local() {
        refused(&["fec0::1", "fec0:1::1", "feff::1"]);
    }

    #[test]
    fn unique_local() {
        refused(&["fc00::1", "fd00::1", "fd12:3456:789a::1", "fdff::1"]);
    }

    #[test]
    fn teredo() {
        refused(&["2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"]);
    }

    #[test]
    fn orchid() {
        refused(&["2001:10::1", "2001:1f::1", "2001:20::1", "2001:2f:ffff::1"]);
    }

    #[test]
    fn discard_only() {
        refused(&["100::1", "100::ffff:ffff:ffff:ffff"]);
    }

    #[test]
    fn outside_global_unicast() {
        refused(&["1::1", "4000::1", "e000::1", "::ffff:0:7f00:1"]);
    }

    #[test]
    fn local_names_are_refused() {
        for name in [
            "localhost",
            "LOCALHOST.",
            "api.localhost",
            "localhost.localdomain",
            "box.localdomain",
            "printer.local",
            "metadata.google.internal",
            "router.home.arpa",
            "intranet",
            "intranet.",
        ] {
            assert!(is_local_name(name), "{name}");
            let url = format!("https://{name}/x");
            assert!(check_url(&url, false).is_err(), "{url}");
        }
        for name in [
            "hooks.example.com",
            "localhost.example.com",
            "local.example",
        ] {
            assert!(!is_local_name(name), "{name}");
        }
    }

    #[test]
    fn only_https_to_public_addresses_unless_insecure_is_allowed() {
        assert!(check_url("https://hooks.example.com/agora", false).is_ok());
        assert!(check_url("https://93.184.216.34/x", false).is_ok());
        for refused in [
            "http://hooks.example.com/agora",
            "https://127.0.0.1/x",
            "https://2130706433/x",
            "https://0x7f.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b::7f00:1]/x",
            "https://[2002:7f00:1::]/x",
            "https://[fec0::1]/x",
            "https://localhost/x",
            "https://metadata.google.internal/x",
            "https://intranet/x",
            "https://user:pw@hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "not a url",
        ] {
            assert!(check_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:9000/x", true).is_ok());
        assert!(check_url("ftp://127.0.0.1/x", true).is_err());
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| a.parse().unwrap_or_else(|_| panic!("{a}")))
            .collect()
    }

    #[test]
    fn the_picked_address_is_public_and_any_special_address_refuses_the_target() {
        assert_eq!(
            pick_address(&addrs(&["93.184.216.34:443", "[2606:4700::1]:443"])),
            Ok("93.184.216.34:443"
                .parse()
                .unwrap_or_else(|_| unreachable!()))
        );
        // Rebinding: a public answer beside an internal one, in either order.
        for resolved in [
            &["93.184.216.34:443", "127.0.0.1:443"][..],
            &["127.0.0.1:443", "93.184.216.34:443"],
            &["93.184.216.34:443", "[::ffff:169.254.169.254]:443"],
            &["[2606:4700::1]:443", "[fe80::1]:443"],
            &["10.0.0.5:443"],
            &["[64:ff9b::a00:5]:443"],
        ] {
            assert!(
                matches!(pick_address(&addrs(resolved)), Err(Refused::Special(_))),
                "{resolved:?}"
            );
        }
        assert_eq!(pick_address(&[]), Err(Refused::NoAddress));
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_after_resolution() {
        // `localhost` is in /etc/hosts: the system resolver answers loopback without any
        // network, as a rebinding name would at delivery time.
        let resolved = resolve("localhost", 443).await.unwrap_or_default();
        assert!(!resolved.is_empty(), "localhost resolves");
        assert!(
            matches!(pick_address(&resolved), Err(Refused::Special(ip)) if ip.is_loopback()),
            "{resolved:?}"
        );
        assert!(pin("https://localhost:8443/x").await.is_err());
    }

    #[tokio::test]
    async fn pin_refuses_names_and_literals_that_are_internal() {
        // IP literals are judged without any lookup.
        assert!(pin("https://127.0.0.1:8443/x").await.is_err());
        assert!(pin("https://[::ffff:10.0.0.1]/x").await.is_err());
        assert!(pin("http://93.184.216.34/x").await.is_err(), "https only");
        let pinned = pin("https://93.184.216.34/x").await;
        assert_eq!(
            pinned.map(|p| (p.host, p.addr)),
            Ok((
                None,
                "93.184.216.34:443"
                    .parse()
                    .unwrap_or_else(|_| unreachable!())
            ))
        );
    }
}
