//! Which URLs a webhook may point at: `https` to a public address, unless
//! `AGORA_WEBHOOK_ALLOW_INSECURE` also allows `http` and loopback or private addresses
//! (development, tests). This keeps an admin token from turning deliveries into requests
//! against the internal network (SSRF) by name or by IP literal.

use std::net::IpAddr;

use reqwest::Url;

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
    let Some(host) = parsed.host_str() else {
        return Err("url: needs a host".into());
    };
    if allow_insecure {
        return Ok(parsed);
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !is_public(ip) {
            return Err(format!("url: {ip} is not a public address"));
        }
    } else {
        let lower = host.to_ascii_lowercase();
        let lower = lower.trim_end_matches('.');
        if lower == "localhost"
            || lower.ends_with(".localhost")
            || lower.ends_with(".local")
            || lower.ends_with(".internal")
            || !lower.contains('.')
        {
            return Err(format!("url: {host} is not a public host name"));
        }
    }
    Ok(parsed)
}

/// False for loopback, private, link-local, unspecified, multicast, documentation and
/// other special-purpose addresses.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_to_public_addresses_unless_insecure_is_allowed() {
        assert!(check_url("https://hooks.example.com/agora", false).is_ok());
        assert!(check_url("https://93.184.216.34/x", false).is_ok());
        for refused in [
            "http://hooks.example.com/agora",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
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
}
