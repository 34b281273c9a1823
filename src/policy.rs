//! The policy decision: given where a login comes from and who it is, pass it through,
//! ask for a second factor, or reject it. Pure functions, no I/O, no clock.
//!
//! Precedence, first match wins:
//! 1. a **deny** site, or a client whose policy is deny → Reject. Nothing overrides a deny,
//!    not even an `exempt` exception;
//! 2. a **user exception** (`mfa` → SecondFactor, `exempt` → PassThrough);
//! 3. a **group exception**, once the directory's Accept has named the groups;
//! 4. the **client's policy** override (e.g. `trusted` for an inside-only Wi-Fi controller);
//! 5. the **site's policy** (longest prefix);
//! 6. **off-site** or **unknown origin** → SecondFactor (fail safe).
//!
//! Groups are only known after the directory's Accept, hence two steps:
//! [`decide_before_directory`] (whose [`Decision::groups_pending`] says whether the groups
//! could still change the answer) and [`decide_after_accept`]. [`explain`] runs the very
//! same functions for `portvakt explain`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::origin::{Origin, OriginSource, find_origin};
use crate::radius::{Packet, attr};
use crate::sites::{ExceptionEntry, SiteConfig, SiteMatch};

/// What logins from a site (or through a client) need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SitePolicy {
    /// No second factor: inside the municipal network.
    Trusted,
    /// Always a second factor (e.g. the doctor's office, a secure zone).
    Mfa,
    /// Every login is rejected.
    Deny,
}

/// What an exception does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExceptionAction {
    /// Always a second factor, wherever the login comes from.
    Mfa,
    /// Never a second factor (service accounts). A deny still rejects.
    Exempt,
}

/// What to do with a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Forward to the directory and relay its answer.
    PassThrough,
    /// Forward to the directory; on Accept, ask for a second factor.
    SecondFactor,
    /// Reject without asking the directory.
    Reject,
}

/// A value in configuration that is not one of the allowed words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// Parses a lowercase keyword (ignoring ASCII case) from `table`.
fn keyword<T: Copy>(s: &str, table: &[(&str, T)]) -> Result<T, ParseError> {
    let s = s.trim();
    let found = table.iter().find(|(name, _)| name.eq_ignore_ascii_case(s));
    found.map(|(_, v)| *v).ok_or_else(|| {
        let names: Vec<_> = table.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        ParseError(format!("{s:?} is not one of {}", names.join(", ")))
    })
}

const SITE_POLICIES: [(&str, SitePolicy); 3] = [
    ("trusted", SitePolicy::Trusted),
    ("mfa", SitePolicy::Mfa),
    ("deny", SitePolicy::Deny),
];
const EXCEPTION_ACTIONS: [(&str, ExceptionAction); 2] = [
    ("mfa", ExceptionAction::Mfa),
    ("exempt", ExceptionAction::Exempt),
];

impl FromStr for SitePolicy {
    type Err = ParseError;

    /// `trusted`, `mfa` or `deny`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &SITE_POLICIES)
    }
}

impl fmt::Display for SitePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = SITE_POLICIES
            .iter()
            .find(|(_, p)| p == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

impl SitePolicy {
    /// The action this policy asks for.
    pub fn action(self) -> Action {
        match self {
            Self::Trusted => Action::PassThrough,
            Self::Mfa => Action::SecondFactor,
            Self::Deny => Action::Reject,
        }
    }
}

impl FromStr for ExceptionAction {
    type Err = ParseError;

    /// `mfa` or `exempt`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &EXCEPTION_ACTIONS)
    }
}

impl fmt::Display for ExceptionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = EXCEPTION_ACTIONS
            .iter()
            .find(|(_, a)| a == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

impl ExceptionAction {
    /// The action this exception asks for.
    pub fn action(self) -> Action {
        match self {
            Self::Mfa => Action::SecondFactor,
            Self::Exempt => Action::PassThrough,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PassThrough => "pass through (no second factor)",
            Self::SecondFactor => "second factor",
            Self::Reject => "reject",
        })
    }
}

/// Where the directory's Access-Accept names the user's groups. Only attributes the
/// directory sets count: the end user cannot set them (security.md T-12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupAttribute {
    /// Class (25): `"Class"`. The default; NPS and FreeRADIUS can both send it.
    #[default]
    Class,
    /// Filter-Id (11): `"Filter-Id"`.
    FilterId,
    /// A vendor string attribute: `"vendor:<id>:<type>"`.
    Vendor {
        /// The vendor's SMI enterprise number.
        vendor: u32,
        /// The vendor's attribute number.
        vendor_type: u8,
    },
}

impl FromStr for GroupAttribute {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("Class") {
            return Ok(Self::Class);
        }
        if s.eq_ignore_ascii_case("Filter-Id") {
            return Ok(Self::FilterId);
        }
        let vendor = s
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("vendor:"))
            .and_then(|_| {
                let (id, typ) = s[7..].split_once(':')?;
                let (vendor, vendor_type) = (id.parse::<u32>().ok()?, typ.parse::<u8>().ok()?);
                (vendor != 0 && vendor_type != 0).then_some(Self::Vendor {
                    vendor,
                    vendor_type,
                })
            });
        vendor.ok_or_else(|| {
            ParseError(format!(
                "{s:?} is not \"Class\", \"Filter-Id\" or \"vendor:<id>:<type>\""
            ))
        })
    }
}

impl fmt::Display for GroupAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Class => f.write_str("Class"),
            Self::FilterId => f.write_str("Filter-Id"),
            Self::Vendor {
                vendor,
                vendor_type,
            } => write!(f, "vendor:{vendor}:{vendor_type}"),
        }
    }
}

/// The group values in a directory's Accept, as text (invalid UTF-8 replaced), trimmed,
/// empty ones left out. Matching against the exception list ignores case and understands
/// DN-like values (see `sites::Exceptions::group`).
pub fn groups_from(accept: &Packet, from: GroupAttribute) -> Vec<String> {
    let values: Vec<&[u8]> = match from {
        GroupAttribute::Class => accept.attrs(attr::CLASS).collect(),
        GroupAttribute::FilterId => accept.attrs(attr::FILTER_ID).collect(),
        GroupAttribute::Vendor {
            vendor,
            vendor_type,
        } => accept.vendor_attrs(vendor, vendor_type).collect(),
    };
    values
        .into_iter()
        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// What `decide` needs to know about one login.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The client's `policy` override, if configured.
    pub client_policy: Option<SitePolicy>,
    /// Where the login comes from.
    pub origin: &'a Origin,
    /// The User-Name, as text (the caller replaces invalid UTF-8).
    pub user: &'a str,
}

/// The site an origin fell in, for logs and `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteHit {
    /// The site's name.
    pub name: String,
    /// The most specific range that matched.
    pub network: IpNet,
    /// The site's policy.
    pub policy: SitePolicy,
}

impl From<SiteMatch<'_>> for SiteHit {
    fn from(m: SiteMatch<'_>) -> Self {
        Self {
            name: m.site.name.clone(),
            network: m.network,
            policy: m.site.policy,
        }
    }
}

/// Which rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The policy of the site the origin is in ([`Decision::site`]).
    Site {
        /// That policy.
        policy: SitePolicy,
    },
    /// The client's `policy` override.
    ClientOverride {
        /// That policy.
        policy: SitePolicy,
    },
    /// An exception for the user.
    UserException(ExceptionEntry),
    /// An exception for one of the user's groups.
    GroupException(ExceptionEntry),
    /// The origin is in no site.
    OffSite,
    /// The origin is unknown, so treated as off-site.
    UnknownOrigin,
}

/// The outcome of the policy for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Which rule decided.
    pub rule: Rule,
    /// The site the origin is in, whichever rule decided (`None`: off-site or unknown).
    pub site: Option<SiteHit>,
    /// Before the directory only: group exceptions exist that could change this decision
    /// once the Accept names the groups, so call [`decide_after_accept`] on Accept.
    pub groups_pending: bool,
}

/// Decides before the directory has answered (groups unknown). A Reject here means: do
/// not ask the directory at all.
pub fn decide_before_directory(config: &SiteConfig, input: &PolicyInput<'_>) -> Decision {
    decide(config, input, None)
}

/// Decides once the directory's Accept has named the user's `groups` (see [`groups_from`]).
pub fn decide_after_accept(
    config: &SiteConfig,
    input: &PolicyInput<'_>,
    groups: &[String],
) -> Decision {
    decide(config, input, Some(groups))
}

/// The one decision function behind both steps; `groups` is `None` before the Accept.
fn decide(config: &SiteConfig, input: &PolicyInput<'_>, groups: Option<&[String]>) -> Decision {
    let site = input
        .origin
        .ip()
        .and_then(|ip| config.sites.classify(ip))
        .map(SiteHit::from);
    let (action, rule) = first_rule(config, input, site.as_ref(), groups);
    let exceptions = &config.exceptions;
    let overridable = !matches!(rule, Rule::UserException(_)) && action != Action::Reject;
    let groups_pending = groups.is_none()
        && overridable
        && match action {
            Action::PassThrough => exceptions.has_group_action(ExceptionAction::Mfa),
            Action::SecondFactor => exceptions.has_group_action(ExceptionAction::Exempt),
            Action::Reject => false,
        };
    Decision {
        action,
        rule,
        site,
        groups_pending,
    }
}

/// The precedence list of the module docs.
fn first_rule(
    config: &SiteConfig,
    input: &PolicyInput<'_>,
    site: Option<&SiteHit>,
    groups: Option<&[String]>,
) -> (Action, Rule) {
    let site_policy = site.map(|s| s.policy);
    if site_policy == Some(SitePolicy::Deny) {
        return (
            Action::Reject,
            Rule::Site {
                policy: SitePolicy::Deny,
            },
        );
    }
    if input.client_policy == Some(SitePolicy::Deny) {
        return (
            Action::Reject,
            Rule::ClientOverride {
                policy: SitePolicy::Deny,
            },
        );
    }
    if let Some(e) = config.exceptions.user(input.user) {
        return (e.action.action(), Rule::UserException(e.clone()));
    }
    if let Some(e) = groups.and_then(|g| config.exceptions.group(g)) {
        return (e.action.action(), Rule::GroupException(e.clone()));
    }
    if let Some(policy) = input.client_policy {
        return (policy.action(), Rule::ClientOverride { policy });
    }
    match (site_policy, input.origin) {
        (Some(policy), _) => (policy.action(), Rule::Site { policy }),
        (None, Origin::Address { .. }) => (Action::SecondFactor, Rule::OffSite),
        (None, Origin::Unknown { .. }) => (Action::SecondFactor, Rule::UnknownOrigin),
    }
}

impl Decision {
    /// The rule that decided, in words, e.g. `site legekontor (10.10.20.0/24) always needs
    /// a second factor`. Safe for logs: user-supplied text is escaped.
    pub fn rule_text(&self) -> impl fmt::Display + '_ {
        RuleText(self)
    }
}

impl fmt::Display for Decision {
    /// The action and the rule, e.g. `second factor: off-site: the address is in no site`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.action, self.rule_text())
    }
}

/// Displays the rule of a decision.
struct RuleText<'a>(&'a Decision);

impl fmt::Display for RuleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decision = self.0;
        let site = decision.site.as_ref();
        let site_name = site.map_or("?", |s| s.name.as_str());
        match &decision.rule {
            Rule::Site { policy } => {
                let net = site.map(|s| s.network.to_string()).unwrap_or_default();
                let what = match policy {
                    SitePolicy::Trusted => "is trusted",
                    SitePolicy::Mfa => "always needs a second factor",
                    SitePolicy::Deny => "denies every login",
                };
                write!(f, "site {site_name} ({net}) {what}")
            }
            Rule::ClientOverride { policy } => write!(f, "the client's policy is {policy}"),
            Rule::UserException(e) => write_exception(f, "user", e),
            Rule::GroupException(e) => write_exception(f, "group", e),
            Rule::OffSite => f.write_str("off-site: the address is in no site"),
            Rule::UnknownOrigin => f.write_str("origin unknown: treated as off-site"),
        }
    }
}

fn write_exception(f: &mut fmt::Formatter<'_>, kind: &str, e: &ExceptionEntry) -> fmt::Result {
    write!(f, "{kind} exception {:?}: {}", e.name, e.action)?;
    match &e.reason {
        Some(reason) => write!(f, " ({})", reason.escape_debug()),
        None => Ok(()),
    }
}

/// One login to explain: what `portvakt explain` gathered from its arguments.
#[derive(Debug, Clone, Copy)]
pub struct ExplainRequest<'a> {
    /// The client's name, for the output.
    pub client: &'a str,
    /// The client's origin sources.
    pub sources: &'a [OriginSource],
    /// The client's policy override.
    pub client_policy: Option<SitePolicy>,
    /// The request, holding the given attributes.
    pub packet: &'a Packet,
    /// The address the request would come from (the client's own address).
    pub packet_source: IpAddr,
    /// The user name.
    pub user: &'a str,
    /// The user's groups as the directory's Accept would name them; `None`: before the Accept.
    pub groups: Option<&'a [String]>,
}

/// What `portvakt explain` prints: every step of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The client's name.
    pub client: String,
    /// The client's origin sources.
    pub sources: Vec<OriginSource>,
    /// The client's policy override.
    pub client_policy: Option<SitePolicy>,
    /// The user name.
    pub user: String,
    /// The origin found.
    pub origin: Origin,
    /// The groups given, if any.
    pub groups: Option<Vec<String>>,
    /// The decision.
    pub decision: Decision,
}

/// Runs the daemon's own steps ([`find_origin`], then [`decide_before_directory`] or, with
/// groups, [`decide_after_accept`]) and keeps every intermediate result.
pub fn explain(config: &SiteConfig, request: &ExplainRequest<'_>) -> Explanation {
    let origin = find_origin(request.sources, request.packet, request.packet_source);
    let input = PolicyInput {
        client_policy: request.client_policy,
        origin: &origin,
        user: request.user,
    };
    let decision = match request.groups {
        None => decide_before_directory(config, &input),
        Some(groups) => decide_after_accept(config, &input, groups),
    };
    Explanation {
        client: request.client.to_owned(),
        sources: request.sources.to_vec(),
        client_policy: request.client_policy,
        user: request.user.to_owned(),
        origin,
        groups: request.groups.map(<[String]>::to_vec),
        decision,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "client:   {} (origin from {})",
            self.client.escape_debug(),
            sources.join(", ")
        )?;
        if let Some(policy) = self.client_policy {
            writeln!(f, "          client policy: {policy}")?;
        }
        writeln!(f, "user:     {}", self.user.escape_debug())?;
        writeln!(f, "origin:   {}", self.origin)?;
        match &self.decision.site {
            Some(s) => writeln!(
                f,
                "site:     {} (range {}, policy {})",
                s.name, s.network, s.policy
            )?,
            None if self.origin.ip().is_some() => writeln!(f, "site:     none (off-site)")?,
            None => writeln!(f, "site:     none (origin unknown)")?,
        }
        match &self.groups {
            Some(groups) => {
                let shown: Vec<String> = groups
                    .iter()
                    .map(|g| format!("\"{}\"", g.escape_debug()))
                    .collect();
                writeln!(
                    f,
                    "groups:   {}",
                    if shown.is_empty() {
                        "none".into()
                    } else {
                        shown.join(", ")
                    }
                )?;
            }
            None => writeln!(f, "groups:   not known before the directory's Accept")?,
        }
        writeln!(f, "rule:     {}", self.decision.rule_text())?;
        write!(f, "decision: {}", self.decision.action)?;
        if self.decision.groups_pending {
            write!(
                f,
                "\nnote:     a group exception may change this once the directory's Accept names the groups"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::Code;
    use crate::sites::RawSitesFile;

    const SITES: &str = r#"
[[sites]]
name = "radhus"
networks = ["10.10.0.0/16", "2001:db8:10::/48"]
policy = "trusted"

[[sites]]
name = "legekontor"
networks = ["10.10.20.0/24"]
policy = "mfa"

[[sites]]
name = "karantene"
networks = ["10.10.99.0/24"]
policy = "deny"

[[exceptions]]
users = ["svc-backup"]
action = "exempt"
reason = "backup agent without a phone"

[[exceptions]]
users = ["Dr.Hansen"]
action = "mfa"

[[exceptions]]
groups = ["Legekontor"]
action = "mfa"

[[exceptions]]
groups = ["VPN-Service"]
action = "exempt"
reason = "service logins"
"#;

    fn config() -> SiteConfig {
        SiteConfig::from_raw(&RawSitesFile::from_toml(SITES).unwrap(), "").unwrap()
    }

    /// Where a case's login comes from, as the NAS would send it.
    #[derive(Clone, Copy)]
    enum Sent {
        /// One Calling-Station-Id with these octets.
        Csi(&'static [u8]),
        /// Two Calling-Station-Ids.
        Twice(&'static [u8], &'static [u8]),
        /// No attribute at all.
        Nothing,
    }

    struct Case {
        name: &'static str,
        from: Sent,
        /// The client's origin sources.
        sources: &'static [&'static str],
        client_policy: Option<SitePolicy>,
        user: &'static str,
        /// `None`: before the directory.
        groups: Option<&'static [&'static str]>,
        action: Action,
        rule: &'static str,
    }

    const CSI: &[&str] = &["Calling-Station-Id"];
    const WIFI: &[&str] = &["packet-source"];

    fn case(
        name: &'static str,
        from: Sent,
        user: &'static str,
        action: Action,
        rule: &'static str,
    ) -> Case {
        Case {
            name,
            from,
            sources: CSI,
            client_policy: None,
            user,
            groups: None,
            action,
            rule,
        }
    }

    /// The rule as a short word, so the table stays readable.
    fn rule_word(rule: &Rule) -> &'static str {
        match rule {
            Rule::Site {
                policy: SitePolicy::Trusted,
            } => "site-trusted",
            Rule::Site {
                policy: SitePolicy::Mfa,
            } => "site-mfa",
            Rule::Site {
                policy: SitePolicy::Deny,
            } => "site-deny",
            Rule::ClientOverride { .. } => "client",
            Rule::UserException(_) => "user",
            Rule::GroupException(_) => "group",
            Rule::OffSite => "off-site",
            Rule::UnknownOrigin => "unknown",
        }
    }

    fn packet(from: Sent) -> Packet {
        let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
        match from {
            Sent::Csi(v) => p.push(attr::CALLING_STATION_ID, v),
            Sent::Twice(a, b) => {
                p.push(attr::CALLING_STATION_ID, a);
                p.push(attr::CALLING_STATION_ID, b);
            }
            Sent::Nothing => {}
        }
        p
    }

    /// Runs one case through the daemon's path: find_origin, then decide. The NAS
    /// itself sits at 10.10.5.1, inside radhus (matters only for packet-source).
    fn run(config: &SiteConfig, c: &Case) -> Decision {
        let sources: Vec<OriginSource> = c.sources.iter().map(|s| s.parse().unwrap()).collect();
        let nas: IpAddr = "10.10.5.1".parse().unwrap();
        let origin = find_origin(&sources, &packet(c.from), nas);
        let input = PolicyInput {
            client_policy: c.client_policy,
            origin: &origin,
            user: c.user,
        };
        match c.groups {
            None => decide_before_directory(config, &input),
            Some(groups) => {
                let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
                decide_after_accept(config, &input, &groups)
            }
        }
    }

    #[test]
    fn decision_table() {
        use Action::{PassThrough as Pass, Reject, SecondFactor as Mfa};
        let config = config();
        let cases = [
            case(
                "inside trusted",
                Sent::Csi(b"10.10.1.7"),
                "alice",
                Pass,
                "site-trusted",
            ),
            case(
                "inside trusted, IPv6",
                Sent::Csi(b"[2001:db8:10::7]:443"),
                "alice",
                Pass,
                "site-trusted",
            ),
            case(
                "inside trusted, mapped",
                Sent::Csi(b"::ffff:10.10.1.7"),
                "alice",
                Pass,
                "site-trusted",
            ),
            case(
                "off-site",
                Sent::Csi(b"203.0.113.7"),
                "alice",
                Mfa,
                "off-site",
            ),
            case(
                "off-site, IPv6",
                Sent::Csi(b"2001:db8:99::7"),
                "alice",
                Mfa,
                "off-site",
            ),
            case(
                "legekontor inside radhus",
                Sent::Csi(b"10.10.20.5"),
                "alice",
                Mfa,
                "site-mfa",
            ),
            case(
                "unknown: MAC",
                Sent::Csi(b"90-E7-C4-32-D3-D6"),
                "alice",
                Mfa,
                "unknown",
            ),
            case("unknown: empty", Sent::Csi(b""), "alice", Mfa, "unknown"),
            case("unknown: missing", Sent::Nothing, "alice", Mfa, "unknown"),
            case(
                "unknown: garbage",
                Sent::Csi(b"\x1b[2J10.10.1.7"),
                "alice",
                Mfa,
                "unknown",
            ),
            case(
                "unknown: hostname",
                Sent::Csi(b"pc-1.kommune.no"),
                "alice",
                Mfa,
                "unknown",
            ),
            case(
                "unknown: repeated",
                Sent::Twice(b"10.10.1.7", b"10.10.1.7"),
                "alice",
                Mfa,
                "unknown",
            ),
            case(
                "deny site",
                Sent::Csi(b"10.10.99.3"),
                "alice",
                Reject,
                "site-deny",
            ),
            case(
                "user exempt off-site",
                Sent::Csi(b"203.0.113.7"),
                "svc-backup",
                Pass,
                "user",
            ),
            case(
                "user exempt, unknown origin",
                Sent::Nothing,
                "svc-backup",
                Pass,
                "user",
            ),
            case(
                "user exempt in deny site",
                Sent::Csi(b"10.10.99.3"),
                "svc-backup",
                Reject,
                "site-deny",
            ),
            case(
                "user exempt is exact",
                Sent::Csi(b"203.0.113.7"),
                "svc-backup@evil",
                Mfa,
                "off-site",
            ),
            case(
                "user mfa inside trusted",
                Sent::Csi(b"10.10.1.7"),
                "dr.hansen",
                Mfa,
                "user",
            ),
            case(
                "user mfa, normalised",
                Sent::Csi(b"10.10.1.7"),
                "KOMMUNE\\DR.HANSEN",
                Mfa,
                "user",
            ),
            case(
                "user exempt, normalised",
                Sent::Csi(b"10.10.1.7"),
                "SVC-Backup",
                Pass,
                "user",
            ),
            Case {
                sources: WIFI,
                ..case(
                    "Wi-Fi controller, packet-source",
                    Sent::Csi(b"90-E7-C4-32-D3-D6"),
                    "alice",
                    Pass,
                    "site-trusted",
                )
            },
            Case {
                client_policy: Some(SitePolicy::Trusted),
                ..case(
                    "client override trusted, MAC origin",
                    Sent::Csi(b"90-E7-C4-32-D3-D6"),
                    "alice",
                    Pass,
                    "client",
                )
            },
            Case {
                client_policy: Some(SitePolicy::Trusted),
                ..case(
                    "client trusted, legekontor origin",
                    Sent::Csi(b"10.10.20.5"),
                    "alice",
                    Pass,
                    "client",
                )
            },
            Case {
                client_policy: Some(SitePolicy::Mfa),
                ..case(
                    "client override mfa inside",
                    Sent::Csi(b"10.10.1.7"),
                    "alice",
                    Mfa,
                    "client",
                )
            },
            Case {
                client_policy: Some(SitePolicy::Deny),
                ..case(
                    "client deny beats exempt",
                    Sent::Csi(b"10.10.1.7"),
                    "svc-backup",
                    Reject,
                    "client",
                )
            },
            Case {
                client_policy: Some(SitePolicy::Trusted),
                ..case(
                    "client trusted, deny site",
                    Sent::Csi(b"10.10.99.3"),
                    "alice",
                    Reject,
                    "site-deny",
                )
            },
            Case {
                client_policy: Some(SitePolicy::Trusted),
                ..case(
                    "user mfa beats client trusted",
                    Sent::Csi(b"10.10.1.7"),
                    "dr.hansen",
                    Mfa,
                    "user",
                )
            },
            Case {
                groups: Some(&["CN=Legekontor,OU=Grupper,DC=kommune,DC=no"]),
                ..case(
                    "group mfa inside trusted",
                    Sent::Csi(b"10.10.1.7"),
                    "bob",
                    Mfa,
                    "group",
                )
            },
            Case {
                groups: Some(&["legekontor"]),
                client_policy: Some(SitePolicy::Trusted),
                ..case(
                    "group mfa beats client trusted",
                    Sent::Csi(b"10.10.1.7"),
                    "bob",
                    Mfa,
                    "group",
                )
            },
            Case {
                groups: Some(&["vpn-service"]),
                ..case(
                    "group exempt off-site",
                    Sent::Csi(b"203.0.113.7"),
                    "bob",
                    Pass,
                    "group",
                )
            },
            Case {
                groups: Some(&["vpn-service"]),
                ..case(
                    "group exempt in deny site",
                    Sent::Csi(b"10.10.99.3"),
                    "bob",
                    Reject,
                    "site-deny",
                )
            },
            Case {
                groups: Some(&["vpn-service", "Legekontor"]),
                ..case(
                    "exempt and mfa groups: mfa",
                    Sent::Csi(b"203.0.113.7"),
                    "bob",
                    Mfa,
                    "group",
                )
            },
            Case {
                groups: Some(&["legekontor"]),
                ..case(
                    "user exempt beats group mfa",
                    Sent::Csi(b"10.10.1.7"),
                    "svc-backup",
                    Pass,
                    "user",
                )
            },
            Case {
                groups: Some(&["Økonomi"]),
                ..case(
                    "other groups change nothing",
                    Sent::Csi(b"10.10.1.7"),
                    "bob",
                    Pass,
                    "site-trusted",
                )
            },
        ];
        for c in &cases {
            let d = run(&config, c);
            assert_eq!(
                (d.action, rule_word(&d.rule)),
                (c.action, c.rule),
                "{}: {d:?}",
                c.name
            );
        }
    }

    #[test]
    fn groups_pending_says_when_the_accept_matters() {
        let config = config();
        let pending =
            |from, user| run(&config, &case("", from, user, Action::Reject, "")).groups_pending;
        // Inside trusted: an mfa group could still require a second factor.
        assert!(pending(Sent::Csi(b"10.10.1.7"), "bob"));
        // Off-site: an exempt group could still waive it.
        assert!(pending(Sent::Csi(b"203.0.113.7"), "bob"));
        // Reject and user exceptions are final.
        assert!(!pending(Sent::Csi(b"10.10.99.3"), "bob"));
        assert!(!pending(Sent::Csi(b"203.0.113.7"), "svc-backup"));
        // Without group exceptions nothing is pending.
        let mut no_groups = RawSitesFile::from_toml(SITES).unwrap();
        no_groups.exceptions.retain(|e| e.groups.is_empty());
        let config = SiteConfig::from_raw(&no_groups, "").unwrap();
        assert!(
            !run(
                &config,
                &case("", Sent::Csi(b"10.10.1.7"), "bob", Action::Reject, "")
            )
            .groups_pending
        );
        // After the Accept nothing is pending either.
        let after = Case {
            groups: Some(&[]),
            ..case("", Sent::Csi(b"10.10.1.7"), "bob", Action::Reject, "")
        };
        assert!(!run(&config, &after).groups_pending);
    }

    #[test]
    fn the_decision_names_the_site_whichever_rule_won() {
        let config = config();
        let d = run(
            &config,
            &case(
                "",
                Sent::Csi(b"10.10.20.5"),
                "svc-backup",
                Action::Reject,
                "",
            ),
        );
        assert_eq!(d.action, Action::PassThrough);
        let site = d.site.unwrap();
        assert_eq!(
            (site.name.as_str(), site.network.to_string(), site.policy),
            ("legekontor", "10.10.20.0/24".into(), SitePolicy::Mfa)
        );
    }

    #[test]
    fn a_decision_reads_as_one_log_line() {
        let config = config();
        let d = run(
            &config,
            &case("", Sent::Csi(b"10.10.20.5"), "alice", Action::Reject, ""),
        );
        assert_eq!(
            d.to_string(),
            "second factor: site legekontor (10.10.20.0/24) always needs a second factor"
        );
        let d = run(
            &config,
            &case("", Sent::Nothing, "svc-backup", Action::Reject, ""),
        );
        assert_eq!(
            d.to_string(),
            "pass through (no second factor): user exception \"svc-backup\": exempt \
             (backup agent without a phone)"
        );
    }

    #[test]
    fn no_sites_means_everyone_is_off_site() {
        let config = SiteConfig::default();
        let d = run(
            &config,
            &case("", Sent::Csi(b"10.10.1.7"), "alice", Action::Reject, ""),
        );
        assert_eq!(
            (d.action, d.rule, d.site),
            (Action::SecondFactor, Rule::OffSite, None)
        );
    }

    #[test]
    fn groups_come_from_the_configured_attribute() {
        let mut accept = Packet::new(Code::AccessAccept, 1, [0; 16]);
        accept.push(
            attr::CLASS,
            &b"CN=Legekontor,OU=Grupper,DC=kommune,DC=no"[..],
        );
        accept.push(attr::CLASS, &b"  "[..]);
        accept.push(attr::CLASS, &b"\xffabc "[..]);
        accept.push(attr::FILTER_ID, &b"vpn-users"[..]);
        accept.push(
            attr::VENDOR_SPECIFIC,
            attr::build_vsa(12356, 1, b"Fortinet-Gruppe").unwrap(),
        );
        assert_eq!(
            groups_from(&accept, GroupAttribute::Class),
            ["CN=Legekontor,OU=Grupper,DC=kommune,DC=no", "\u{fffd}abc"]
        );
        assert_eq!(
            groups_from(&accept, GroupAttribute::FilterId),
            ["vpn-users"]
        );
        let vendor = GroupAttribute::Vendor {
            vendor: 12356,
            vendor_type: 1,
        };
        assert_eq!(groups_from(&accept, vendor), ["Fortinet-Gruppe"]);
        assert!(
            groups_from(
                &accept,
                GroupAttribute::Vendor {
                    vendor: 9,
                    vendor_type: 1
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn words_parse_and_print() {
        for (text, policy) in [
            ("trusted", SitePolicy::Trusted),
            ("MFA", SitePolicy::Mfa),
            (" deny ", SitePolicy::Deny),
        ] {
            assert_eq!(text.parse::<SitePolicy>(), Ok(policy));
            assert_eq!(policy.to_string(), text.trim().to_lowercase());
        }
        assert!("allow".parse::<SitePolicy>().is_err());
        assert_eq!(
            "Exempt".parse::<ExceptionAction>(),
            Ok(ExceptionAction::Exempt)
        );
        assert!("bypass".parse::<ExceptionAction>().is_err());
        for text in ["Class", "Filter-Id", "vendor:311:25"] {
            assert_eq!(text.parse::<GroupAttribute>().unwrap().to_string(), text);
        }
        for bad in [
            "Reply-Message",
            "vendor:311",
            "vendor:0:1",
            "vendor:311:300",
            "",
        ] {
            assert!(bad.parse::<GroupAttribute>().is_err(), "{bad}");
        }
    }

    fn explained(
        config: &SiteConfig,
        attrs: &[&str],
        sources: &[OriginSource],
        groups: Option<&[String]>,
    ) -> String {
        let mut packet = Packet::new(Code::AccessRequest, 0, [0; 16]);
        for a in attrs {
            crate::origin::push_attribute(&mut packet, a).unwrap();
        }
        let request = ExplainRequest {
            client: "vpn1",
            sources,
            client_policy: None,
            packet: &packet,
            packet_source: "127.0.0.1".parse().unwrap(),
            user: "alice",
            groups,
        };
        explain(config, &request).to_string()
    }

    #[test]
    fn explain_prints_every_step() {
        let config = config();
        let csi = [OriginSource::CallingStationId];
        assert_eq!(
            explained(&config, &["Calling-Station-Id=203.0.113.7"], &csi, None),
            "client:   vpn1 (origin from Calling-Station-Id)\n\
             user:     alice\n\
             origin:   203.0.113.7 from Calling-Station-Id\n\
             site:     none (off-site)\n\
             groups:   not known before the directory's Accept\n\
             rule:     off-site: the address is in no site\n\
             decision: second factor\n\
             note:     a group exception may change this once the directory's Accept names the groups"
        );
        let cisco: Vec<OriginSource> = vec!["Cisco-AVPair:ip:source-ip".parse().unwrap()];
        let groups = ["CN=Legekontor,OU=Grupper".to_string()];
        assert_eq!(
            explained(
                &config,
                &["Cisco-AVPair:ip:source-ip=10.10.1.7"],
                &cisco,
                Some(&groups)
            ),
            "client:   vpn1 (origin from Cisco-AVPair:ip:source-ip)\n\
             user:     alice\n\
             origin:   10.10.1.7 from Cisco-AVPair:ip:source-ip\n\
             site:     radhus (range 10.10.0.0/16, policy trusted)\n\
             groups:   \"CN=Legekontor,OU=Grupper\"\n\
             rule:     group exception \"Legekontor\": mfa\n\
             decision: second factor"
        );
        let text = explained(
            &config,
            &["Calling-Station-Id=90:e7:c4:32:d3:d6"],
            &csi,
            Some(&[]),
        );
        assert!(text.contains("origin:   unknown (Calling-Station-Id \"90:e7:c4:32:d3:d6\" is not an IP address), treated as off-site\n"), "{text}");
        assert!(text.contains("site:     none (origin unknown)\n"), "{text}");
        assert!(
            text.ends_with(
                "rule:     origin unknown: treated as off-site\ndecision: second factor"
            ),
            "{text}"
        );
    }

    #[test]
    fn explain_and_the_daemon_agree() {
        // Same inputs through `explain` and through the two calls the pipeline makes.
        let config = config();
        let sources = [
            OriginSource::CallingStationId,
            OriginSource::TunnelClientEndpoint,
        ];
        for value in [
            "10.10.1.7",
            "10.10.20.5",
            "10.10.99.3",
            "203.0.113.7",
            "-",
            "",
        ] {
            let mut packet = Packet::new(Code::AccessRequest, 0, [0; 16]);
            packet.push(attr::CALLING_STATION_ID, value);
            let src: IpAddr = "127.0.0.1".parse().unwrap();
            let request = ExplainRequest {
                client: "vpn1",
                sources: &sources,
                client_policy: None,
                packet: &packet,
                packet_source: src,
                user: "bob",
                groups: None,
            };
            let e = explain(&config, &request);
            let origin = find_origin(&sources, &packet, src);
            let input = PolicyInput {
                client_policy: None,
                origin: &origin,
                user: "bob",
            };
            assert_eq!(e.origin, origin, "{value}");
            assert_eq!(
                e.decision,
                decide_before_directory(&config, &input),
                "{value}"
            );
        }
    }
}
