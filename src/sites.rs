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
}

/// One `[[exceptions]]` entry: users and/or groups and what to do with them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawException {
    /// User names as the NAS sends them in User-Name, matched case-insensitively. An `exempt`
    /// entry matches only the exact name; an `mfa` entry also matches `DOMAIN\name` and
    /// `name@realm`, so a differently written login cannot dodge it.
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

    /// The exception for a user, if any. `mfa` entries match the name ignoring case, and
    /// also its bare form (without `DOMAIN\` or `@realm`); `exempt` entries match only the
    /// full name ignoring case, since the directory may read `name@other-realm` as a
    /// different account. When both could apply, `mfa` wins.
    pub fn user(&self, user: &str) -> Option<&ExceptionEntry> {
        let full = user.to_lowercase();
        let mfa = [full.as_str(), bare_user(&full)]
            .into_iter()
            .filter_map(|name| self.users.get(name))
            .find(|e| e.action == ExceptionAction::Mfa);
        mfa.or_else(|| {
            self.users
                .get(&full)
                .filter(|e| e.action == ExceptionAction::Exempt)
        })
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
