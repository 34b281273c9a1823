//! The NAS table: which source addresses are RADIUS clients, and with what secret.

use std::net::IpAddr;

use crate::config::ClientSettings;

/// The configured clients, looked up by source address (most specific prefix wins).
#[derive(Debug)]
pub struct Clients {
    clients: Vec<ClientSettings>,
}

impl Clients {
    /// Builds the table.
    pub fn new(mut clients: Vec<ClientSettings>) -> Self {
        // Longest prefix first, so the first match is the most specific.
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        Self { clients }
    }

    /// The client for a source address, if it is one. IPv4-mapped IPv6 sources
    /// (a dual-stack socket) match IPv4 entries.
    pub fn find(&self, ip: IpAddr) -> Option<&ClientSettings> {
        let ip = ip.to_canonical();
        self.clients.iter().find(|c| c.network.contains(&ip))
    }

    /// A client by name.
    pub fn by_name(&self, name: &str) -> Option<&ClientSettings> {
        self.clients.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_net;
    use crate::secret::Secret;

    fn client(name: &str, net: &str) -> ClientSettings {
        ClientSettings {
            name: name.into(),
            network: parse_net(net).unwrap(),
            secret: Secret::new("0123456789abcdef"),
            require_message_authenticator: true,
            limit_proxy_state: true,
            policy: None,
            origin: crate::origin::OriginSource::default_list(),
            second_factor: crate::config::SecondFactorMode::Challenge,
        }
    }

    #[test]
    fn most_specific_wins_and_mapped_v6_matches() {
        let t = Clients::new(vec![
            client("wide", "10.0.0.0/8"),
            client("one", "10.1.2.3"),
        ]);
        assert_eq!(t.find("10.1.2.3".parse().unwrap()).unwrap().name, "one");
        assert_eq!(t.find("10.9.9.9".parse().unwrap()).unwrap().name, "wide");
        assert_eq!(
            t.find("::ffff:10.1.2.3".parse().unwrap()).unwrap().name,
            "one"
        );
        assert!(t.find("110.0.0.1".parse().unwrap()).is_none());
    }
}
