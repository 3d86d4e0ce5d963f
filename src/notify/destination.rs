//! Where a subscription may send: a subscription is a way for whoever may create one to make the
//! service send HTTP requests, so a destination must be one the operator allowed
//! (`--notify-allow`: host names, `*.suffix` patterns, CIDRs), and loopback, link-local (the
//! cloud's metadata service at 169.254.169.254), unspecified and multicast addresses, the API
//! server's and the pod's own are refused unless the operator named that very host. The name is
//! resolved once, here, and the sender connects to the address that was checked: a name that
//! resolves elsewhere a moment later (DNS rebinding) changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::quote::quote;

/// One `--notify-allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// A host exactly as URLs name it (a name, or an address): the only way to allow a
    /// host on a refused address.
    Host(String),
    /// `*.example.com`: any name under it (not `example.com` itself).
    Suffix(String),
    Cidr(IpNet),
}

impl FromStr for Allowed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if s.contains('/') {
            return s.parse().map(Allowed::Cidr).map_err(|_| format!("{} is not a CIDR such as 10.0.0.0/8", quote(&s)));
        }
        if let Some(suffix) = s.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("{} is not a pattern such as *.example.com", quote(&s)));
            }
            return Ok(Allowed::Suffix(format!(".{suffix}")));
        }
        if s.is_empty() || s.contains('*') || s.contains(':') && s.parse::<IpAddr>().is_err() {
            return Err(format!("{} is not a host, a *.suffix pattern or a CIDR", quote(&s)));
        }
        Ok(Allowed::Host(s.trim_matches(['[', ']']).to_owned()))
    }
}

/// The destinations the operator allows, and the addresses refused unless a host is named.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    pub allowed: Vec<Allowed>,
    /// The API server's and the pod's own addresses.
    pub own: Vec<IpAddr>,
}

/// A destination that was checked: connect to `addr`, and name `host` (TLS, `Host`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub url: url::Url,
    pub host: String,
    pub addr: SocketAddr,
    pub https: bool,
}

/// Why a destination is refused: shown in the subscription's status, so it names the host but
/// never the URL's path or query (which may hold a token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Guard {
    /// Parses, resolves and checks a destination URL.
    pub async fn check(&self, url: &str) -> Result<Checked, Refused> {
        let url = url::Url::parse(url.trim()).map_err(|e| Refused(format!("the destination is not a URL: {e}")))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(Refused(format!(
                    "the destination's scheme is {}: only http and https are sent to",
                    quote(other)
                )));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused(
                "the destination URL holds credentials, which would be logged and shown: refused".to_owned(),
            ));
        }
        let host = url.host_str().ok_or_else(|| Refused("the destination has no host".to_owned()))?;
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
        let resolved = resolve(&host, port).await?;
        let named = self.allowed.iter().any(|a| matches!(a, Allowed::Host(h) if *h == host));
        let pattern =
            named || self.allowed.iter().any(|a| matches!(a, Allowed::Suffix(s) if host.ends_with(s.as_str())));
        let mut why = None;
        for addr in resolved {
            let ip = canonical(addr.ip());
            let refusal = if let Some(kind) = self.special(ip).filter(|_| !named) {
                Some(format!("{host} resolves to {ip}, {kind}: refused unless --notify-allow names {host}"))
            } else if !pattern && !self.allowed.iter().any(|a| matches!(a, Allowed::Cidr(net) if net.contains(&ip))) {
                Some(format!("{host} ({ip}) is not allowed by --notify-allow"))
            } else {
                None
            };
            match refusal {
                None => return Ok(Checked { url, host, addr: SocketAddr::new(ip, port), https }),
                Some(refusal) => why = why.or(Some(refusal)),
            }
        }
        Err(Refused(why.unwrap_or_else(|| format!("{host} resolves to no address"))))
    }

    /// What kind of address is refused unless its host is named, if it is one.
    fn special(&self, ip: IpAddr) -> Option<&'static str> {
        if self.own.contains(&ip) {
            return Some("an address of the API server or of this pod");
        }
        match ip {
            IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
            IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address (a cloud's metadata service)"),
            IpAddr::V4(v4) if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() => {
                Some("not a host's address")
            }
            IpAddr::V6(v6) if v6.is_loopback() => Some("a loopback address"),
            IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("a link-local address"),
            IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => Some("not a host's address"),
            _ => None,
        }
    }
}

/// The API server's addresses (as the client's configuration names it, and the in-cluster
/// service's) and this pod's (its host name's, and `POD_IP`): refused unless named.
pub async fn own_addresses() -> Vec<IpAddr> {
    let mut hosts: Vec<(String, u16)> = Vec::new();
    if let Ok(config) = kube::Config::infer().await {
        let url = &config.cluster_url;
        hosts.extend(url.host().map(|h| (h.trim_matches(['[', ']']).to_owned(), url.port_u16().unwrap_or(443))));
    }
    for var in ["KUBERNETES_SERVICE_HOST", "POD_IP"] {
        hosts.extend(std::env::var(var).ok().filter(|v| !v.is_empty()).map(|v| (v, 443)));
    }
    hosts.extend(Some(crate::files::hostname()).filter(|h| !h.is_empty()).map(|h| (h, 443)));
    let mut own = Vec::new();
    for (host, port) in hosts {
        for addr in resolve(&host, port).await.unwrap_or_default() {
            let ip = canonical(addr.ip());
            if !own.contains(&ip) {
                own.push(ip);
            }
        }
    }
    own
}

/// IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`) are checked as what they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The host's addresses: itself when it is one, else what the resolver says, within a bound.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(std::time::Duration::from_secs(5), lookup).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(e)) => Err(Refused(format!("{host} cannot be resolved: {e}"))),
        Err(_) => Err(Refused(format!("{host} was not resolved within 5s"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{Allowed, Guard};

    fn guard(allowed: &[&str]) -> Guard {
        Guard { allowed: allowed.iter().map(|a| a.parse().unwrap()).collect(), own: vec!["10.0.0.7".parse().unwrap()] }
    }

    #[tokio::test]
    async fn only_allowed_hosts_and_named_special_addresses_pass() {
        let g = guard(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(g.check("http://127.0.0.1:9/hook").await.unwrap().addr.to_string(), "127.0.0.1:9");
        assert!(g.check("http://127.0.0.2:9/").await.unwrap_err().0.contains("loopback"));
        assert!(g.check("http://[::ffff:127.0.0.2]:9/").await.unwrap_err().0.contains("loopback"));
        assert!(g.check("http://169.254.169.254/latest").await.unwrap_err().0.contains("link-local"));
        assert!(g.check("http://10.0.0.7/").await.unwrap_err().0.contains("this pod"));
        assert_eq!(g.check("https://10.1.2.3/").await.unwrap().addr.to_string(), "10.1.2.3:443");
        assert!(g.check("http://11.1.2.3/").await.unwrap_err().0.contains("not allowed"));
        assert!(
            g.check("http://localhost:9/")
                .await
                .unwrap_err()
                .0
                .contains("refused unless --notify-allow names localhost")
        );
        assert!(g.check("ftp://127.0.0.1/").await.unwrap_err().0.contains("only http and https"));
        let secret = g.check("http://user:hunter2@127.0.0.1/").await.unwrap_err().0;
        assert!(!secret.contains("hunter2"), "{secret}");
    }

    #[test]
    fn entries_parse_or_say_what_they_should_be() {
        assert_eq!("*.Example.com".parse::<Allowed>().unwrap(), Allowed::Suffix(".example.com".into()));
        assert!("10.0.0.0/33".parse::<Allowed>().is_err());
        assert!("a*b".parse::<Allowed>().is_err());
    }
}
