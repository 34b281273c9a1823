//! Sites and the exception list: what `policy` consults, and how it is configured.
//!
//! A site is a named set of address ranges with a [`SitePolicy`]. [`Sites::classify`]
//! finds the site of an address by **longest prefix**, so `legekontor` (10.10.20.0/24,
//! `mfa`) wins inside `radhus` (10.10.0.0/16, `trusted`). Addresses in no site are off-site.
//!
//! The exception list names users and groups that always need a second factor (`mfa`)
//! or never do (`exempt`, e.g. service accounts).
//!
//! Configuration comes as raw serde structs ([`RawSitesFile`], which can also be its own
//! file so network admins can own it) and is converted once by [`SiteConfig::from_raw`],
//! which reports every problem with the offending key (`sites[1].networks[0]: …`).
//! Load-time rules, and why:
//! - `/0` is refused: it would make the whole Internet one site.
//! - Host bits set (`10.10.20.5/24`) are refused, with the network suggested: the intent
//!   is ambiguous (a typo in the address, or in the length?), and guessing could trust
//!   more than meant.
//! - The same range twice, in one site or two, is refused: which policy applies would
//!   depend on file order.
//! - IPv4-mapped IPv6 ranges (`::ffff:10.0.0.0/104`) are refused: addresses are
//!   canonicalised to IPv4 before matching, so such a range could never match. IPv4
//!   ranges already cover mapped addresses.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::factor::{FailMode, Method};
use crate::policy::{ExceptionAction, GroupAttribute, SitePolicy};

/// A configuration problem, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigIssue {
    /// The key, e.g. `sites[1].networks[0]`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigIssue {
    /// An issue with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The sites, the exception list and `groups_from`, as written in the main configuration
/// or in a separate sites file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSitesFile {
    /// Named sites inside the municipal network, each with its address ranges and policy.
    /// An address in no site is off-site and needs a second factor.
    #[serde(default)]
    pub sites: Vec<RawSite>,
    /// Users and groups that always need a second factor (`mfa`) or never do (`exempt`).
    #[serde(default)]
    pub exceptions: Vec<RawException>,
    /// Where the directory's Access-Accept names the user's groups, for group exceptions:
    /// `"Class"` (the default), `"Filter-Id"`, or a vendor attribute `"vendor:<id>:<type>"`.
    #[serde(default)]
    pub groups_from: Option<String>,
}

/// One `[[sites]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// A unique name, shown in logs and by `portvakt explain`, e.g. `"radhus"`.
    pub name: String,
    /// Address ranges in CIDR form, IPv4 or IPv6, e.g. `["10.10.0.0/16", "2001:db8:10::/48"]`.
    /// A bare address is one host. Host bits must be zero and `/0` is refused. The most
    /// specific range over all sites wins. IPv4 ranges also match IPv4-mapped IPv6 addresses.
    pub networks: Vec<String>,
    /// `"trusted"`: no second factor; `"mfa"`: always a second factor; `"deny"`: every login
    /// from here is rejected, whatever the exceptions say.
    pub policy: String,
    /// What logins from here get while a provider is unreachable, per method:
    /// `fail_mode = { push = "open", sms = "closed" }`. A method left out uses its global
    /// `[push] fail_mode` / `[sms] fail_mode`. TOTP needs no provider and is never affected.
    #[serde(default)]
    pub fail_mode: RawSiteFailModes,
}

/// A site's `fail_mode` table; both keys optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSiteFailModes {
    /// While the push provider is unreachable: `"closed"` (Reject) or `"open"` (Accept
    /// without a second factor, logged).
    #[serde(default)]
    pub push: Option<FailMode>,
    /// While the SMS gateway is unreachable: `"closed"` or `"open"`.
    #[serde(default)]
    pub sms: Option<FailMode>,
}

/// One `[[exceptions]]` entry: users and/or groups and what to do with them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawException {
    /// User names as the NAS sends them in User-Name. An `exempt` entry matches only the
    /// exact name, ignoring ASCII case; an `mfa` entry ignores case and surrounding spaces
    /// and also matches `DOMAIN\name` and `name@realm`, so another spelling cannot dodge it.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names as the directory's Accept carries them (see `groups_from`), matched
    /// case-insensitively: a plain name such as `"Legekontor"` matches the value
    /// `Legekontor` and the first element of `CN=Legekontor,OU=…`; a full DN matches only itself.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `"mfa"`: always ask for a second factor; `"exempt"`: never ask (a deny site still rejects).
    pub action: String,
    /// Why the exception exists; shown in logs and by `portvakt explain`. Required for
    /// `exempt`, which switches off the second factor.
    #[serde(default)]
    pub reason: Option<String>,
}

impl RawSitesFile {
    /// Parses a separate sites file (TOML) through the same `config` crate the main file
    /// uses. Reading the file is the caller's job.
    pub fn from_toml(text: &str) -> Result<Self, config::ConfigError> {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()
    }
}

/// Everything `policy` consults: the sites, the exceptions, and where groups are read.
#[derive(Debug, Clone, Default)]
pub struct SiteConfig {
    /// The site table.
    pub sites: Sites,
    /// The exception list.
    pub exceptions: Exceptions,
    /// Where the directory's Accept names the user's groups.
    pub groups_from: GroupAttribute,
}

impl SiteConfig {
    /// Converts the raw configuration, reporting every problem at once. `prefix` is put in
    /// front of every key: `""` for the main file, or e.g. `"sites_file(/etc/portvakt/sites.toml) "`.
    pub fn from_raw(raw: &RawSitesFile, prefix: &str) -> Result<Self, Vec<ConfigIssue>> {
        let sites = Sites::from_raw(&raw.sites, &format!("{prefix}sites"));
        let exceptions = Exceptions::from_raw(&raw.exceptions, &format!("{prefix}exceptions"));
        let groups_from = match &raw.groups_from {
            None => Ok(GroupAttribute::default()),
            Some(text) => text.parse::<GroupAttribute>().map_err(|e| {
                vec![ConfigIssue::new(
                    format!("{prefix}groups_from"),
                    e.to_string(),
                )]
            }),
        };
        match (sites, exceptions, groups_from) {
            (Ok(sites), Ok(exceptions), Ok(groups_from)) => Ok(Self {
                sites,
                exceptions,
                groups_from,
            }),
            (s, e, g) => Err([s.err(), e.err(), g.err()]
                .into_iter()
                .flatten()
                .flatten()
                .collect()),
        }
    }
}

/// A site: a name, its address ranges and its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The configured name.
    pub name: String,
    /// What logins from here need.
    pub policy: SitePolicy,
    /// The address ranges, as configured (host bits zero).
    pub networks: Vec<IpNet>,
    /// What logins from here get while a provider is unreachable, where set.
    pub fail_mode: SiteFailModes,
}

/// A site's own `fail_mode` per method; `None` leaves the method's global setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteFailModes {
    /// While the push provider is unreachable.
    pub push: Option<FailMode>,
    /// While the SMS gateway is unreachable.
    pub sms: Option<FailMode>,
}

impl SiteFailModes {
    /// The site's own setting for `method`, if any. TOTP has none: it needs no provider.
    pub fn of(&self, method: Method) -> Option<FailMode> {
        match method {
            Method::Push => self.push,
            Method::Sms => self.sms,
            Method::Totp => None,
        }
    }
}

impl From<RawSiteFailModes> for SiteFailModes {
    fn from(raw: RawSiteFailModes) -> Self {
        Self {
            push: raw.push,
            sms: raw.sms,
        }
    }
}

/// The site an address belongs to and the range that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteMatch<'a> {
    /// The site.
    pub site: &'a Site,
    /// The most specific range containing the address.
    pub network: IpNet,
}

/// The site table: longest-prefix match over IPv4 and IPv6.
#[derive(Debug, Clone, Default)]
pub struct Sites {
    sites: Vec<Site>,
    v4: PrefixTable,
    v6: PrefixTable,
}

/// Where a range lives: (index of the site, index of the range in its `networks`).
type RangeAt = (usize, usize);

/// Exact-match tables, one per prefix length present, longest first. A lookup costs at
/// most one hash probe per distinct length (≤ 32 or 128), whatever the number of ranges.
#[derive(Debug, Clone, Default)]
struct PrefixTable {
    /// (prefix length, masked address bits → where the range lives).
    by_len: Vec<(u8, HashMap<u128, RangeAt>)>,
}

impl PrefixTable {
    fn insert(&mut self, len: u8, bits: u128, at: RangeAt) {
        let pos = match self.by_len.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(pos) => pos,
            Err(pos) => {
                self.by_len.insert(pos, (len, HashMap::new()));
                pos
            }
        };
        self.by_len[pos].1.insert(masked(bits, len), at);
    }

    fn lookup(&self, bits: u128) -> Option<RangeAt> {
        self.by_len
            .iter()
            .find_map(|(len, map)| map.get(&masked(bits, *len)).copied())
    }
}

/// An address as 128 bits, IPv4 in the top 32, so one prefix length means the same
/// number of leading bits in both families.
fn address_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `bits` with all but the first `len` bits cleared.
fn masked(bits: u128, len: u8) -> u128 {
    // A shift by 128 (len 0) overflows; checked_shl turns it into "keep nothing".
    u128::MAX
        .checked_shl(128 - u32::from(len))
        .map_or(0, |mask| bits & mask)
}

impl Sites {
    /// Builds the table from `[[sites]]`; `key` names the list, e.g. `sites`.
    pub fn from_raw(raw: &[RawSite], key: &str) -> Result<Self, Vec<ConfigIssue>> {
        let mut table = Self::default();
        let mut issues = Vec::new();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut seen: HashMap<IpNet, String> = HashMap::new();
        for (i, site) in raw.iter().enumerate() {
            let key = format!("{key}[{i}]");
            let name = site_name(&site.name, &format!("{key}.name"), &mut names);
            let name = name.map_err(|e| issues.push(e));
            let policy = site.policy.parse::<SitePolicy>();
            let policy = policy
                .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.policy"), e.to_string())));
            if site.networks.is_empty() {
                issues.push(ConfigIssue::new(
                    format!("{key}.networks"),
                    "lists no address range",
                ));
            }
            let mut networks = Vec::with_capacity(site.networks.len());
            for (j, text) in site.networks.iter().enumerate() {
                let net_key = format!("{key}.networks[{j}]");
                match parse_network(text) {
                    Err(message) => issues.push(ConfigIssue::new(net_key, message)),
                    Ok(net) => match seen.get(&net) {
                        Some(first) => issues.push(ConfigIssue::new(
                            net_key,
                            format!("{net} is already listed at {first}"),
                        )),
                        None => {
                            seen.insert(net, net_key);
                            networks.push(net);
                        }
                    },
                }
            }
            if let (Ok(name), Ok(policy)) = (name, policy) {
                table.push(Site {
                    name,
                    policy,
                    networks,
                    fail_mode: site.fail_mode.into(),
                });
            }
        }
        if issues.is_empty() {
            Ok(table)
        } else {
            Err(issues)
        }
    }

    /// Adds a site whose ranges are already checked.
    fn push(&mut self, site: Site) {
        let index = self.sites.len();
        for (j, net) in site.networks.iter().enumerate() {
            let table = if net.addr().is_ipv4() {
                &mut self.v4
            } else {
                &mut self.v6
            };
            // IPv4 bits sit at the top of the 128, so an IPv4 /24 keeps 24 leading bits.
            table.insert(net.prefix_len(), address_bits(net.addr()), (index, j));
        }
        self.sites.push(site);
    }

    /// The site of `ip` by longest prefix, or `None` if it is off-site. IPv4-mapped IPv6
    /// addresses are canonicalised first, so they match IPv4 ranges.
    pub fn classify(&self, ip: IpAddr) -> Option<SiteMatch<'_>> {
        let ip = ip.to_canonical();
        let table = if ip.is_ipv4() { &self.v4 } else { &self.v6 };
        let (site, net) = table.lookup(address_bits(ip))?;
        let site = &self.sites[site];
        Some(SiteMatch {
            site,
            network: site.networks[net],
        })
    }

    /// The site named exactly `name` (as [`Site::name`], which decisions carry). A linear
    /// scan: it runs only when a provider has failed, and site tables are small.
    pub fn named(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name == name)
    }

    /// The sites, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter()
    }

    /// The number of sites.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// Whether there are no sites (then every login is off-site).
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }
}

/// Checks a site name: non-empty, printable, unique ignoring case.
fn site_name(
    name: &str,
    key: &str,
    names: &mut HashMap<String, String>,
) -> Result<String, ConfigIssue> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return Err(ConfigIssue::new(
            key,
            "must be a non-empty name without control characters",
        ));
    }
    match names.entry(trimmed.to_lowercase()) {
        Entry::Occupied(first) => {
            let message = format!("{trimmed:?} is already the name at {}", first.get());
            Err(ConfigIssue::new(key, message))
        }
        Entry::Vacant(slot) => {
            slot.insert(key.to_owned());
            Ok(trimmed.to_owned())
        }
    }
}

/// Parses one range (see the module docs for what is refused and why).
fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = match (text.parse::<IpNet>(), text.parse::<IpAddr>()) {
        (Ok(net), _) => net,
        (_, Ok(ip)) => IpNet::from(ip),
        _ => {
            return Err(format!(
                "{text:?} is not an address range such as 10.10.0.0/16 or 2001:db8:10::/48"
            ));
        }
    };
    if net.prefix_len() == 0 {
        return Err(format!(
            "{net} covers every address; list the municipal ranges instead"
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{net} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped().filter(|_| v6.prefix_len() >= 96)
    {
        let v4net = format!("{v4}/{}", v6.prefix_len() - 96);
        return Err(format!(
            "{net} is IPv4-mapped; write it as {v4net}, which also matches mapped addresses"
        ));
    }
    Ok(net)
}

/// One exception, as matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionEntry {
    /// The user or group name as configured.
    pub name: String,
    /// What to do.
    pub action: ExceptionAction,
    /// Why, as configured.
    pub reason: Option<String>,
}

/// The exception list: users and groups, keyed by their lowercase names.
#[derive(Debug, Clone, Default)]
pub struct Exceptions {
    users: HashMap<String, ExceptionEntry>,
    groups: HashMap<String, ExceptionEntry>,
}

impl Exceptions {
    /// Builds the list from `[[exceptions]]`; `key` names the list, e.g. `exceptions`.
    /// A user or group may appear once only, so no entry silently shadows another.
    pub fn from_raw(raw: &[RawException], key: &str) -> Result<Self, Vec<ConfigIssue>> {
        let mut out = Self::default();
        let mut issues = Vec::new();
        let mut first_key: HashMap<(bool, String), String> = HashMap::new();
        for (i, entry) in raw.iter().enumerate() {
            let key = format!("{key}[{i}]");
            let action = match check_entry(entry, &key) {
                Ok(action) => action,
                Err(mut e) => {
                    issues.append(&mut e);
                    continue;
                }
            };
            let lists = [
                (false, "users", &entry.users),
                (true, "groups", &entry.groups),
            ];
            for (is_group, field, names) in lists {
                for (j, name) in names.iter().enumerate() {
                    let name_key = format!("{key}.{field}[{j}]");
                    let norm = name.trim().to_lowercase();
                    if norm.is_empty() {
                        issues.push(ConfigIssue::new(name_key, "is empty"));
                    } else if let Some(first) = first_key.get(&(is_group, norm.clone())) {
                        issues.push(ConfigIssue::new(
                            name_key,
                            format!("{name:?} is already listed at {first}"),
                        ));
                    } else {
                        first_key.insert((is_group, norm.clone()), name_key);
                        let reason = entry.reason.as_ref().map(|r| r.trim().to_owned());
                        let value = ExceptionEntry {
                            name: name.trim().to_owned(),
                            action,
                            reason,
                        };
                        let map = if is_group {
                            &mut out.groups
                        } else {
                            &mut out.users
                        };
                        map.insert(norm, value);
                    }
                }
            }
        }
        if issues.is_empty() {
            Ok(out)
        } else {
            Err(issues)
        }
    }

    /// The exception for a user, if any. The match is deliberately lopsided, so that a
    /// different spelling of a login can neither dodge `mfa` nor borrow `exempt`:
    /// - `mfa` entries match ignoring case (Unicode) and surrounding whitespace, and also
    ///   the bare name (without `DOMAIN\` or `@realm`);
    /// - `exempt` entries match only the exact configured name, ignoring ASCII case alone:
    ///   the directory may read `name@other-realm`, `name ` or a Unicode case variant as
    ///   another account.
    ///
    /// When both could apply, `mfa` wins.
    pub fn user(&self, user: &str) -> Option<&ExceptionEntry> {
        // No user exceptions (the usual case): nothing to lowercase on every request.
        if self.users.is_empty() {
            return None;
        }
        let full = user.to_lowercase();
        let trimmed = full.trim();
        let mfa = [trimmed, bare_user(trimmed)]
            .into_iter()
            .filter_map(|name| self.users.get(name))
            .find(|e| e.action == ExceptionAction::Mfa);
        let exempt = || {
            let entry = self.users.get(&full)?;
            (entry.action == ExceptionAction::Exempt && entry.name.eq_ignore_ascii_case(user))
                .then_some(entry)
        };
        mfa.or_else(exempt)
    }

    /// The exception for a user in `groups` (values from the directory's Accept), if any.
    /// When the user is in both an `mfa` and an `exempt` group, `mfa` wins.
    pub fn group(&self, groups: &[String]) -> Option<&ExceptionEntry> {
        let names: Vec<String> = groups
            .iter()
            .flat_map(|g| group_names(g))
            .flatten()
            .collect();
        let find = |action| {
            names
                .iter()
                .filter_map(|n| self.groups.get(n))
                .find(|e| e.action == action)
        };
        find(ExceptionAction::Mfa).or_else(|| find(ExceptionAction::Exempt))
    }

    /// Whether any group exception has this action (so an Accept's groups could matter).
    pub fn has_group_action(&self, action: ExceptionAction) -> bool {
        self.groups.values().any(|e| e.action == action)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }

    /// Users and groups listed.
    pub fn len(&self) -> usize {
        self.users.len() + self.groups.len()
    }
}

/// Checks an entry's action, reason and that it names someone.
fn check_entry(entry: &RawException, key: &str) -> Result<ExceptionAction, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    if entry.users.is_empty() && entry.groups.is_empty() {
        issues.push(ConfigIssue::new(key, "names no users and no groups"));
    }
    let action = entry.action.parse::<ExceptionAction>();
    let action =
        action.map_err(|e| issues.push(ConfigIssue::new(format!("{key}.action"), e.to_string())));
    let no_reason = entry.reason.as_deref().is_none_or(|r| r.trim().is_empty());
    if action == Ok(ExceptionAction::Exempt) && no_reason {
        issues.push(ConfigIssue::new(
            format!("{key}.reason"),
            "is required for exempt: say why no second factor is needed",
        ));
    }
    match action {
        Ok(action) if issues.is_empty() => Ok(action),
        _ => Err(issues),
    }
}

/// A lowercase user name without `DOMAIN\` in front or `@realm` behind.
fn bare_user(full: &str) -> &str {
    let name = full.rsplit_once('\\').map_or(full, |(_, n)| n);
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// The lowercase names a group value answers to: itself, and for a DN-like value
/// (`CN=Legekontor,OU=…`, or Cisco's `OU=Legekontor;`) its first element's value.
fn group_names(value: &str) -> [Option<String>; 2] {
    let full = value.trim().to_lowercase();
    let first = ["cn=", "ou="]
        .iter()
        .find_map(|p| full.strip_prefix(p))
        .and_then(|rest| rest.split([',', ';']).next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && *v != full);
    [Some(full), first]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, networks: &[&str], policy: &str) -> RawSite {
        RawSite {
            name: name.into(),
            networks: networks.iter().map(|n| n.to_string()).collect(),
            policy: policy.into(),
            fail_mode: RawSiteFailModes::default(),
        }
    }

    fn table(raw: &[RawSite]) -> Sites {
        Sites::from_raw(raw, "sites").unwrap()
    }

    fn class(sites: &Sites, ip: &str) -> Option<(String, String)> {
        let m = sites.classify(ip.parse().unwrap())?;
        Some((m.site.name.clone(), m.network.to_string()))
    }

    fn hit(name: &str, net: &str) -> Option<(String, String)> {
        Some((name.into(), net.into()))
    }

    #[test]
    fn prefixes_match_on_bit_boundaries() {
        let sites = table(&[site("ti", &["10.0.0.0/8"], "trusted")]);
        assert_eq!(class(&sites, "10.255.255.255"), hit("ti", "10.0.0.0/8"));
        assert_eq!(class(&sites, "110.0.0.1"), None);
        assert_eq!(class(&sites, "11.0.0.0"), None);
        assert_eq!(class(&sites, "9.255.255.255"), None);
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let radhus = site("radhus", &["10.10.0.0/16", "2001:db8:10::/48"], "trusted");
        let lege = site("legekontor", &["10.10.20.0/24"], "mfa");
        for sites in [
            table(&[radhus.clone(), lege.clone()]),
            table(&[lege, radhus]),
        ] {
            assert_eq!(
                class(&sites, "10.10.20.5"),
                hit("legekontor", "10.10.20.0/24")
            );
            assert_eq!(class(&sites, "10.10.21.5"), hit("radhus", "10.10.0.0/16"));
            assert_eq!(class(&sites, "10.11.20.5"), None);
            assert_eq!(
                class(&sites, "2001:db8:10:ffff::1"),
                hit("radhus", "2001:db8:10::/48")
            );
            assert_eq!(class(&sites, "2001:db8:11::1"), None);
            // IPv4-mapped IPv6 matches the IPv4 range.
            assert_eq!(
                class(&sites, "::ffff:10.10.20.5"),
                hit("legekontor", "10.10.20.0/24")
            );
            // An IPv6 address whose first 32 bits spell 10.10.20.x is still IPv6.
            assert_eq!(class(&sites, "a0a:1405::1"), None);
        }
    }

    #[test]
    fn a_bare_address_is_one_host() {
        let sites = table(&[site("bastion", &["192.0.2.10", "2001:db8::10"], "trusted")]);
        assert_eq!(class(&sites, "192.0.2.10"), hit("bastion", "192.0.2.10/32"));
        assert_eq!(class(&sites, "192.0.2.11"), None);
        assert_eq!(
            class(&sites, "2001:db8::10"),
            hit("bastion", "2001:db8::10/128")
        );
    }

    /// A deterministic xorshift generator, so the large-table test is repeatable.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn ip(&mut self, v6: bool) -> IpAddr {
            if v6 {
                // Keep the first 16 bits in a small range so prefixes overlap often.
                let bits = (u128::from(self.next()) << 64 | u128::from(self.next())) >> 4;
                IpAddr::V6((bits | (0x2001u128 << 112)).into())
            } else {
                IpAddr::V4(((self.next() as u32 >> 4) | 0x0a00_0000).into())
            }
        }
    }

    #[test]
    fn a_large_table_agrees_with_a_linear_scan() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut raw = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while seen.len() < 1_000 {
            let v6 = rng.next().is_multiple_of(3);
            let len = if v6 {
                16 + rng.next() % 113
            } else {
                4 + rng.next() % 29
            } as u8;
            let net = IpNet::new(rng.ip(v6), len).unwrap().trunc();
            if seen.insert(net) {
                let policy = ["trusted", "mfa", "deny"][seen.len() % 3];
                raw.push(site(
                    &format!("s{}", seen.len()),
                    &[&net.to_string()],
                    policy,
                ));
            }
        }
        let sites = table(&raw);
        let nets: Vec<(IpNet, &str)> = raw
            .iter()
            .map(|s| (s.networks[0].parse().unwrap(), s.name.as_str()))
            .collect();
        let mut matched = 0;
        for i in 0..20_000 {
            // Half the probes start inside a listed range, to exercise nesting.
            let ip = if i % 2 == 0 {
                let (net, _) = nets[rng.next() as usize % nets.len()];
                let host = rng.ip(net.addr().is_ipv6());
                let bits = address_bits(net.addr())
                    | (address_bits(host) & !masked(u128::MAX, net.prefix_len()));
                if net.addr().is_ipv4() {
                    IpAddr::V4(((bits >> 96) as u32).into())
                } else {
                    IpAddr::V6(bits.into())
                }
            } else {
                rng.ip(i % 4 == 1)
            };
            let want = nets
                .iter()
                .filter(|(n, _)| n.contains(&ip))
                .max_by_key(|(n, _)| n.prefix_len());
            let got = sites
                .classify(ip)
                .map(|m| (m.network, m.site.name.as_str()));
            assert_eq!(got, want.copied(), "{ip}");
            matched += usize::from(got.is_some());
        }
        // The probe set really exercises matches, not only misses.
        assert!(matched > 10_000, "{matched}");
    }

    fn issues(raw: &[RawSite]) -> Vec<String> {
        Sites::from_raw(raw, "sites")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn bad_ranges_are_refused_with_their_key() {
        let e = issues(&[site("a", &["10.0.0.0/8", "0.0.0.0/0", "::/0"], "trusted")]);
        assert_eq!(e.len(), 2);
        assert!(
            e[0].starts_with("sites[0].networks[1]: 0.0.0.0/0 covers every address"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("sites[0].networks[2]: ::/0 covers every address"),
            "{e:?}"
        );
        let e = issues(&[site("a", &["10.10.20.5/16"], "trusted")]);
        assert_eq!(
            e,
            ["sites[0].networks[0]: 10.10.20.5/16 has host bits set; did you mean 10.10.0.0/16?"]
        );
        let e = issues(&[site("a", &["::ffff:10.0.0.0/104"], "trusted")]);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("write it as 10.0.0.0/8"), "{e:?}");
        for garbage in [
            "10.0.0.0/33",
            "radhus",
            "10.0.0.0/",
            "",
            "10.0.0.0-10.0.0.255",
        ] {
            let e = issues(&[site("a", &[garbage], "trusted")]);
            assert_eq!(e.len(), 1, "{garbage}");
            assert!(e[0].starts_with("sites[0].networks[0]: "), "{e:?}");
        }
    }

    #[test]
    fn duplicates_and_bad_fields_are_refused() {
        let e = issues(&[
            site("radhus", &["10.10.0.0/16"], "trusted"),
            site("Radhus", &["10.20.0.0/16", "10.20.0.0/16"], "trusted"),
            site("lab", &["10.10.0.0/16"], "mfa"),
            site(" ", &[], "open"),
        ]);
        assert_eq!(
            e,
            [
                "sites[1].name: \"Radhus\" is already the name at sites[0].name",
                "sites[1].networks[1]: 10.20.0.0/16 is already listed at sites[1].networks[0]",
                "sites[2].networks[0]: 10.10.0.0/16 is already listed at sites[0].networks[0]",
                "sites[3].name: must be a non-empty name without control characters",
                "sites[3].policy: \"open\" is not one of \"trusted\", \"mfa\", \"deny\"",
                "sites[3].networks: lists no address range",
            ]
        );
    }

    fn exception(
        users: &[&str],
        groups: &[&str],
        action: &str,
        reason: Option<&str>,
    ) -> RawException {
        RawException {
            users: users.iter().map(|u| u.to_string()).collect(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            action: action.into(),
            reason: reason.map(Into::into),
        }
    }

    fn exceptions() -> Exceptions {
        let raw = [
            exception(
                &["svc-backup", "KOMMUNE\\svc-scan"],
                &["VPN-Service"],
                "exempt",
                Some("no phone"),
            ),
            exception(
                &["Dr.Hansen", "Øystein"],
                &["Legekontor", "CN=Sikker,OU=Grupper,DC=kommune,DC=no"],
                "mfa",
                None,
            ),
        ];
        Exceptions::from_raw(&raw, "exceptions").unwrap()
    }

    fn user_action(e: &Exceptions, user: &str) -> Option<ExceptionAction> {
        e.user(user).map(|x| x.action)
    }

    #[test]
    fn user_exceptions_match_normalised_names() {
        let e = exceptions();
        let (mfa, exempt) = (Some(ExceptionAction::Mfa), Some(ExceptionAction::Exempt));
        assert_eq!(user_action(&e, "svc-backup"), exempt);
        assert_eq!(user_action(&e, "SVC-Backup"), exempt);
        assert_eq!(user_action(&e, "kommune\\SVC-SCAN"), exempt);
        // Exempt is exact: another realm may be another account.
        assert_eq!(user_action(&e, "svc-backup@evil.example"), None);
        assert_eq!(user_action(&e, "OTHER\\svc-backup"), None);
        assert_eq!(user_action(&e, "svc-scan"), None);
        assert_eq!(user_action(&e, "svc-backup "), None);
        // U+212A KELVIN SIGN lowercases to 'k', but is not the configured name.
        assert_eq!(user_action(&e, "svc-bac\u{212a}up"), None);
        // Mfa also catches the other spellings of the same login.
        assert_eq!(user_action(&e, "dr.hansen"), mfa);
        assert_eq!(user_action(&e, "DR.HANSEN@kommune.no"), mfa);
        assert_eq!(user_action(&e, "KOMMUNE\\Dr.Hansen"), mfa);
        assert_eq!(user_action(&e, "ØYSTEIN"), mfa);
        assert_eq!(user_action(&e, " dr.hansen\t"), mfa);
        assert_eq!(user_action(&e, "dr.hansen@kommune.no "), mfa);
        assert_eq!(user_action(&e, "alice"), None);
        assert_eq!(
            e.user("Svc-Backup").unwrap().reason.as_deref(),
            Some("no phone")
        );
        assert_eq!(e.user("dr.hansen").unwrap().name, "Dr.Hansen");
    }

    fn group_action(e: &Exceptions, groups: &[&str]) -> Option<ExceptionAction> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        e.group(&groups).map(|x| x.action)
    }

    #[test]
    fn group_exceptions_understand_dn_values() {
        let e = exceptions();
        let (mfa, exempt) = (Some(ExceptionAction::Mfa), Some(ExceptionAction::Exempt));
        assert_eq!(group_action(&e, &["legekontor"]), mfa);
        assert_eq!(
            group_action(&e, &["CN=Legekontor,OU=Grupper,DC=kommune,DC=no"]),
            mfa
        );
        assert_eq!(group_action(&e, &["OU=Legekontor;"]), mfa);
        assert_eq!(
            group_action(&e, &["cn=sikker,ou=grupper,dc=kommune,dc=no"]),
            mfa
        );
        // A full DN in the configuration matches only that DN.
        assert_eq!(
            group_action(&e, &["CN=Sikker,OU=Andre,DC=kommune,DC=no"]),
            None
        );
        assert_eq!(group_action(&e, &["Sikker"]), None);
        assert_eq!(group_action(&e, &["CN=Legekontor-IT,OU=Grupper"]), None);
        assert_eq!(group_action(&e, &["vpn-service"]), exempt);
        // In an exempt and an mfa group at once: mfa.
        assert_eq!(
            group_action(&e, &["VPN-Service", "CN=Legekontor,OU=Grupper"]),
            mfa
        );
        assert_eq!(group_action(&e, &[]), None);
        assert!(
            e.has_group_action(ExceptionAction::Mfa) && e.has_group_action(ExceptionAction::Exempt)
        );
    }

    #[test]
    fn bad_exceptions_are_refused_with_their_key() {
        let raw = [
            exception(&["svc-backup"], &[], "exempt", None),
            exception(&[], &[], "mfa", None),
            exception(&["bob"], &[], "skip", None),
            exception(&["alice", "ALICE", ""], &["Legekontor"], "mfa", None),
            exception(&["Alice"], &["legekontor"], "exempt", Some("  ")),
            exception(&["Alice"], &["legekontor"], "exempt", Some("test account")),
        ];
        let e: Vec<String> = Exceptions::from_raw(&raw, "exceptions")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            e,
            [
                "exceptions[0].reason: is required for exempt: say why no second factor is needed",
                "exceptions[1]: names no users and no groups",
                "exceptions[2].action: \"skip\" is not one of \"mfa\", \"exempt\"",
                "exceptions[3].users[1]: \"ALICE\" is already listed at exceptions[3].users[0]",
                "exceptions[3].users[2]: is empty",
                "exceptions[4].reason: is required for exempt: say why no second factor is needed",
                "exceptions[5].users[0]: \"Alice\" is already listed at exceptions[3].users[0]",
                "exceptions[5].groups[0]: \"legekontor\" is already listed at exceptions[3].groups[0]",
            ]
        );
    }

    const EXAMPLE: &str = r#"
groups_from = "Filter-Id"

[[sites]]
name = "radhus"
networks = ["10.10.0.0/16", "2001:db8:10::/48"]
policy = "trusted"

[[sites]]
name = "legekontor"
networks = ["10.10.20.0/24"]
policy = "mfa"

[[exceptions]]
users = ["svc-backup"]
action = "exempt"
reason = "Backup agent without a phone"

[[exceptions]]
groups = ["Legekontor"]
action = "mfa"
"#;

    #[test]
    fn a_sites_file_parses_through_config() {
        let raw = RawSitesFile::from_toml(EXAMPLE).unwrap();
        assert_eq!(raw.sites.len(), 2);
        assert_eq!(
            raw.exceptions[0].reason.as_deref(),
            Some("Backup agent without a phone")
        );
        let config = SiteConfig::from_raw(&raw, "").unwrap();
        assert_eq!(config.groups_from, GroupAttribute::FilterId);
        assert_eq!(config.sites.len(), 2);
        assert_eq!(
            class(&config.sites, "10.10.20.1"),
            hit("legekontor", "10.10.20.0/24")
        );
        assert_eq!(
            config.exceptions.user("svc-backup").map(|e| e.action),
            Some(ExceptionAction::Exempt)
        );
        let empty = SiteConfig::from_raw(&RawSitesFile::from_toml("").unwrap(), "").unwrap();
        assert!(empty.sites.is_empty() && empty.exceptions.is_empty());
        assert_eq!(empty.groups_from, GroupAttribute::Class);
    }

    #[test]
    fn unknown_fields_are_refused() {
        for (text, field) in [
            ("trusted_networks = [\"10.0.0.0/8\"]", "trusted_networks"),
            (
                "[[sites]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\npolicy = \"mfa\"\nnetwork = \"x\"",
                "network",
            ),
            ("[[exceptions]]\nuser = \"bob\"\naction = \"mfa\"", "user"),
        ] {
            let err = RawSitesFile::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn every_part_reports_at_once_with_the_prefix() {
        let raw = RawSitesFile {
            sites: vec![site("a", &["10.0.0.1/8"], "trusted")],
            exceptions: vec![exception(&["x"], &[], "exempt", None)],
            groups_from: Some("Reply-Message".into()),
        };
        let e: Vec<String> = SiteConfig::from_raw(&raw, "sites.toml: ")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(e.len(), 3);
        assert!(
            e[0].starts_with("sites.toml: sites[0].networks[0]: "),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("sites.toml: exceptions[0].reason: "),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("sites.toml: groups_from: \"Reply-Message\" is not"),
            "{e:?}"
        );
    }
}
