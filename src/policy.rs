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
