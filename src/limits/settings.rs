//! The `[limits]` section: [`RawLimits`] as written, [`Limits`] once checked.
//!
//! Rates are written as text, `"<count>/<period>"`: `"1000/s"`, `"30/min"`, `"5/h"`, or any
//! humantime period such as `"3/10m"`; `"off"` switches a rate off. A rate allows `count`
//! at once and then one more every `period / count` (governor's GCRA), so `"30/min"` lets
//! 30 logins through in a burst and one every 2 s after that.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use serde::Deserialize;

use crate::sites::ConfigIssue;

/// The longest window, lockout or block accepted: a year. Longer values are typos, and
/// keeping every time below it rules out overflow in the arithmetic on Unix seconds.
const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);

/// Most events a rate may allow per period. Beyond it the interval between two events
/// drops below a microsecond and the limit means nothing.
const MOST_PER_PERIOD: u32 = 1_000_000;

/// `[limits]` as written. Every field has a default, so the section may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Requests per RADIUS client (NAS), every kind of request, e.g. `"1000/s"`; `"off"`
    /// for none. Protects portvakt from one misbehaving or captured NAS.
    #[serde(default = "default_per_client")]
    pub per_client: String,
    /// Logins per origin address (the user's own address, read from the request; IPv6 by
    /// `origin_ipv6_prefix`), e.g. `"30/min"`. Later rounds of a login (requests carrying
    /// State: EAP rounds, the second factor) are not counted.
    #[serde(default = "default_per_origin")]
    pub per_origin: String,
    /// Whether `per_origin` also applies to logins from trusted sites.
    #[serde(default)]
    pub per_origin_on_trusted: bool,
    /// Logins per user name, e.g. `"10/min"`. Later rounds of a login are not counted.
    #[serde(default = "default_per_user")]
    pub per_user: String,
    /// Whether `per_user` also applies to logins from trusted sites.
    #[serde(default = "yes")]
    pub per_user_on_trusted: bool,
    /// Requests sent to the directory, all users together, e.g. `"400/s"`: a ceiling that
    /// protects NPS and AD during an attack. Over it, logins are rejected without asking.
    #[serde(default = "default_directory")]
    pub directory: String,
    /// Second-factor failures (wrong codes, denied pushes, expired challenges) within
    /// `second_factor_window` that lock the user.
    #[serde(default = "default_second_factor_failures")]
    pub second_factor_failures: u32,
    /// Failures count in a row while each comes within this long of the user's previous
    /// failure (the way AD counts bad passwords); a longer pause starts the count again.
    #[serde(default = "default_second_factor_window", with = "humantime_serde")]
    pub second_factor_window: Duration,
    /// Password rejects from the directory within `directory_reject_window` that lock the
    /// user. Keep it below the directory's own lockout threshold, so that portvakt, not
    /// AD, absorbs the guessing.
    #[serde(default = "default_directory_rejects")]
    pub directory_rejects: u32,
    /// Rejects count in a row while each comes within this long of the user's previous
    /// failure. Set it to at least AD's "Reset account lockout counter after", so that
    /// every guess AD still counts, portvakt counts too.
    #[serde(default = "default_directory_reject_window", with = "humantime_serde")]
    pub directory_reject_window: Duration,
    /// The directory's own lockout threshold (AD's "Account lockout threshold"), if known:
    /// `directory_rejects` must then be below it. 0 means the directory never locks.
    #[serde(default)]
    pub directory_lockout_threshold: Option<u32>,
    /// How long a first lockout lasts. Each lockout that follows within `lockout_memory`
    /// of the previous one's end lasts twice as long as that one, up to `lockout_max`.
    /// At least AD's "Reset account lockout counter after" keeps AD's count from carrying
    /// over from one lockout to the next.
    #[serde(default = "default_lockout", with = "humantime_serde")]
    pub lockout: Duration,
    /// The longest lockout.
    #[serde(default = "default_lockout_max", with = "humantime_serde")]
    pub lockout_max: Duration,
    /// How long after a lockout ends a new one still counts as a repeat (and grows).
    #[serde(default = "default_lockout_memory", with = "humantime_serde")]
    pub lockout_memory: Duration,
    /// Whether lockouts apply to logins from trusted sites: failures there count, and a
    /// locked user is rejected there too.
    #[serde(default = "yes")]
    pub lockout_on_trusted: bool,
    /// Distinct user names rejected by the directory from one origin address within
    /// `spray_window` that block that origin (the password-spray shield).
    /// Only rejects count: users behind one NAT address who log in fine do not.
    #[serde(default = "default_spray_users")]
    pub spray_users: u32,
    /// The sliding window for `spray_users`.
    #[serde(default = "default_spray_window", with = "humantime_serde")]
    pub spray_window: Duration,
    /// How long a spraying origin stays blocked.
    #[serde(default = "default_spray_block", with = "humantime_serde")]
    pub spray_block: Duration,
    /// Whether the spray shield also watches logins from trusted sites (where many users
    /// share a NAT address).
    #[serde(default)]
    pub spray_on_trusted: bool,
    /// IPv6 origins are counted per prefix of this length: one subscriber gets a whole
    /// prefix and can change its address at will.
    #[serde(default = "default_origin_ipv6_prefix")]
    pub origin_ipv6_prefix: u8,
    /// Most keys (users, origins) each table holds. At the cap, per-origin and per-user
    /// rates are skipped for new keys (the per-client and directory limits still hold),
    /// and the event is logged.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            per_client: default_per_client(),
            per_origin: default_per_origin(),
            per_origin_on_trusted: false,
            per_user: default_per_user(),
            per_user_on_trusted: true,
            directory: default_directory(),
            second_factor_failures: default_second_factor_failures(),
            second_factor_window: default_second_factor_window(),
            directory_rejects: default_directory_rejects(),
            directory_reject_window: default_directory_reject_window(),
            directory_lockout_threshold: None,
            lockout: default_lockout(),
            lockout_max: default_lockout_max(),
            lockout_memory: default_lockout_memory(),
            lockout_on_trusted: true,
            spray_users: default_spray_users(),
            spray_window: default_spray_window(),
            spray_block: default_spray_block(),
            spray_on_trusted: false,
            origin_ipv6_prefix: default_origin_ipv6_prefix(),
            max_keys: default_max_keys(),
        }
    }
}

fn default_per_client() -> String {
    "1000/s".into()
}
fn default_per_origin() -> String {
    "30/min".into()
}
fn default_per_user() -> String {
    "10/min".into()
}
fn default_directory() -> String {
    "400/s".into()
}
fn default_second_factor_failures() -> u32 {
    5
}
fn default_second_factor_window() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_directory_rejects() -> u32 {
    3
}
fn default_directory_reject_window() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_lockout() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_lockout_max() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_lockout_memory() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_spray_users() -> u32 {
    10
}
fn default_spray_window() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_spray_block() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_origin_ipv6_prefix() -> u8 {
    64
}
fn default_max_keys() -> usize {
    100_000
}
fn yes() -> bool {
    true
}

/// A rate: at most `count` events at once, refilled evenly over `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events per period, and the burst.
    pub count: NonZeroU32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// Parses `"30/min"`, `"1000/s"`, `"5/h"`, `"3/10m"`; `Ok(None)` for `"off"`.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let hint = "expected \"<count>/<period>\" such as \"30/min\" or \"1000/s\", or \"off\"";
        let Some((count, per)) = text.split_once('/') else {
            return Err(format!("{text:?}: {hint}"));
        };
        let count = count
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .filter(|c| c.get() <= MOST_PER_PERIOD)
            .ok_or_else(|| {
                format!("{text:?}: the count must be a whole number from 1 to {MOST_PER_PERIOD}")
            })?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| format!("{text:?}: {hint}"))?,
        };
        if per < Duration::from_secs(1) || per > LONGEST {
            return Err(format!(
                "{text:?}: the period must be between 1 s and a year"
            ));
        }
        Ok(Some(Self { count, per }))
    }

    /// The governor quota: a burst of `count`, one more every `per / count`.
    pub fn quota(self) -> Quota {
        let interval = self.per / self.count.get();
        // `parse` keeps `per` ≥ 1 s and `count` ≤ 10⁶, so the interval is ≥ 1 µs, never
        // zero; the fallback only keeps this total.
        Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.count)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

/// A count and the window it is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// How many events.
    pub count: u32,
    /// Within how long.
    pub window: Duration,
}

/// Checked `[limits]` settings. See [`RawLimits`] for what each one means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests per client; `None`: off.
    pub per_client: Option<Rate>,
    /// Logins per origin; `None`: off.
    pub per_origin: Option<Rate>,
    /// `per_origin` applies to trusted sites too.
    pub per_origin_on_trusted: bool,
    /// Logins per user name; `None`: off.
    pub per_user: Option<Rate>,
    /// `per_user` applies to trusted sites too.
    pub per_user_on_trusted: bool,
    /// Requests to the directory, in total; `None`: off.
    pub directory: Option<Rate>,
    /// Second-factor failures that lock a user.
    pub second_factor: Threshold,
    /// Directory rejects that lock a user.
    pub directory_rejects: Threshold,
    /// First lockout period.
    pub lockout: Duration,
    /// Longest lockout.
    pub lockout_max: Duration,
    /// How long a lockout counts as history for the next one.
    pub lockout_memory: Duration,
    /// Lockouts apply to trusted sites too.
    pub lockout_on_trusted: bool,
    /// Distinct rejected users from one origin that block it.
    pub spray: Threshold,
    /// How long a spraying origin is blocked.
    pub spray_block: Duration,
    /// The spray shield watches trusted sites too.
    pub spray_on_trusted: bool,
    /// IPv6 origins are grouped by this prefix length.
    pub origin_ipv6_prefix: u8,
    /// Most keys per table.
    pub max_keys: usize,
}

impl Default for Limits {
    /// The defaults of [`RawLimits`].
    fn default() -> Self {
        // The defaults are constants this module's tests check to be valid, so this
        // cannot fail; `expect` would only fire on an edit that breaks that test too.
        Self::from_raw(&RawLimits::default(), "").expect("the default limits are valid")
    }
}

impl Limits {
    /// Checks the raw settings, reporting every problem at once. Keys are named
    /// `{prefix}limits.<field>`: pass `""` for the main configuration file.
    pub fn from_raw(raw: &RawLimits, prefix: &str) -> Result<Self, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut check = Checker {
            prefix,
            issues: &mut issues,
        };
        let limits = Self {
            per_client: check.rate("per_client", &raw.per_client),
            per_origin: check.rate("per_origin", &raw.per_origin),
            per_origin_on_trusted: raw.per_origin_on_trusted,
            per_user: check.rate("per_user", &raw.per_user),
            per_user_on_trusted: raw.per_user_on_trusted,
            directory: check.rate("directory", &raw.directory),
            second_factor: Threshold {
                count: check.within("second_factor_failures", raw.second_factor_failures, 1, 100),
                window: check.span("second_factor_window", raw.second_factor_window),
            },
            directory_rejects: Threshold {
                count: check.within("directory_rejects", raw.directory_rejects, 1, 100),
                window: check.span("directory_reject_window", raw.directory_reject_window),
            },
            lockout: check.span("lockout", raw.lockout),
            lockout_max: check.span("lockout_max", raw.lockout_max),
            lockout_memory: check.span("lockout_memory", raw.lockout_memory),
            lockout_on_trusted: raw.lockout_on_trusted,
            // One user is no spray: at 1 every typo would block the address.
            spray: Threshold {
                count: check.within("spray_users", raw.spray_users, 2, 200),
                window: check.span("spray_window", raw.spray_window),
            },
            spray_block: check.span("spray_block", raw.spray_block),
            spray_on_trusted: raw.spray_on_trusted,
            origin_ipv6_prefix: raw.origin_ipv6_prefix,
            max_keys: raw.max_keys,
        };
        check.relations(raw);
        if issues.is_empty() {
            Ok(limits)
        } else {
            Err(issues)
        }
    }
}

/// Collects issues while the fields are converted.
struct Checker<'a> {
    prefix: &'a str,
    issues: &'a mut Vec<ConfigIssue>,
}

impl Checker<'_> {
    fn issue(&mut self, field: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue::new(
            format!("{}limits.{field}", self.prefix),
            message,
        ));
    }

    fn rate(&mut self, field: &str, text: &str) -> Option<Rate> {
        Rate::parse(text).unwrap_or_else(|message| {
            self.issue(field, message);
            None
        })
    }

    /// Counts are kept in a byte per user or origin (a million of them fit in little
    /// memory), and NIST SP 800-63B caps failed attempts at 100 anyway.
    fn within(&mut self, field: &str, value: u32, least: u32, most: u32) -> u32 {
        if !(least..=most).contains(&value) {
            self.issue(field, format!("must be from {least} to {most}"));
        }
        value
    }

    fn span(&mut self, field: &str, value: Duration) -> Duration {
        if value < Duration::from_secs(1) || value > LONGEST {
            self.issue(field, "must be between 1 s and a year");
        }
        value
    }

    /// Rules between fields.
    fn relations(&mut self, raw: &RawLimits) {
        if raw.lockout_max < raw.lockout {
            self.issue("lockout_max", "must not be shorter than `lockout`");
        }
        if let Some(theirs) = raw.directory_lockout_threshold
            && theirs > 0
            && raw.directory_rejects >= theirs
        {
            self.issue(
                "directory_rejects",
                format!(
                    "must be below the directory's own lockout threshold \
                     (directory_lockout_threshold = {theirs}), or guessing locks the account in AD"
                ),
            );
        }
        if !(32..=128).contains(&raw.origin_ipv6_prefix) {
            self.issue("origin_ipv6_prefix", "must be from 32 to 128");
        }
        if raw.max_keys < 100 {
            self.issue("max_keys", "must be at least 100");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Option<Rate> {
        Rate::parse(text).unwrap()
    }

    #[test]
    fn rates_parse_in_every_spelling() {
        let r = |count, secs| {
            Some(Rate {
                count: NonZeroU32::new(count).unwrap(),
                per: Duration::from_secs(secs),
            })
        };
        assert_eq!(rate("1000/s"), r(1000, 1));
        assert_eq!(rate(" 30 / min "), r(30, 60));
        assert_eq!(rate("5/h"), r(5, 3600));
        assert_eq!(rate("3/10m"), r(3, 600));
        assert_eq!(rate("OFF"), None);
        for bad in [
            "",
            "30",
            "0/min",
            "-1/s",
            "x/min",
            "30/fortnight",
            "5/500ms",
            "2000000/s",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_quota_bursts_count_and_refills_evenly() {
        let q = rate("30/min").unwrap().quota();
        assert_eq!(q.burst_size().get(), 30);
        assert_eq!(q.replenish_interval(), Duration::from_secs(2));
        assert_eq!(rate("3/10m").unwrap().to_string(), "3/10m");
    }

    #[test]
    fn the_defaults_are_the_issues_and_valid() {
        let l = Limits::from_raw(&RawLimits::default(), "").unwrap();
        assert_eq!(l, Limits::default());
        assert_eq!(l.second_factor.count, 5);
        assert_eq!(l.lockout, Duration::from_secs(900));
        assert_eq!(
            l.directory_rejects,
            Threshold {
                count: 3,
                window: Duration::from_secs(600)
            }
        );
        assert_eq!(
            l.spray,
            Threshold {
                count: 10,
                window: Duration::from_secs(300)
            }
        );
        assert!(l.lockout_on_trusted && !l.spray_on_trusted);
    }

    #[test]
    fn the_section_parses_from_toml_with_defaults_and_refuses_typos() {
        let parse = |text: &str| -> Result<RawLimits, String> {
            config::Config::builder()
                .add_source(config::File::from_str(text, config::FileFormat::Toml))
                .build()
                .and_then(config::Config::try_deserialize)
                .map_err(|e| e.to_string())
        };
        let raw =
            parse("per_user = \"5/min\"\nlockout = \"30m\"\nspray_on_trusted = true").unwrap();
        assert_eq!(raw.per_user, "5/min");
        assert_eq!(raw.lockout, Duration::from_secs(1800));
        assert!(raw.spray_on_trusted);
        assert_eq!(raw.directory_rejects, 3, "defaults fill the rest");
        let err = parse("per_usr = \"5/min\"").unwrap_err();
        assert!(err.contains("per_usr"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let raw = RawLimits {
            per_user: "ten a minute".into(),
            directory: "0/s".into(),
            directory_rejects: 10,
            directory_lockout_threshold: Some(10),
            second_factor_failures: 101,
            spray_users: 1,
            lockout: Duration::from_secs(3600),
            lockout_max: Duration::from_secs(60),
            spray_window: Duration::ZERO,
            origin_ipv6_prefix: 8,
            max_keys: 5,
            ..RawLimits::default()
        };
        let issues = Limits::from_raw(&raw, "").unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "limits.per_user",
                "limits.directory",
                "limits.second_factor_failures",
                "limits.spray_users",
                "limits.spray_window",
                "limits.lockout_max",
                "limits.directory_rejects",
                "limits.origin_ipv6_prefix",
                "limits.max_keys",
            ]
        );
        let prefixed = Limits::from_raw(&raw, "sites_file(x) ").unwrap_err();
        assert_eq!(prefixed[0].key, "sites_file(x) limits.per_user");
    }

    #[test]
    fn a_directory_that_never_locks_allows_any_threshold() {
        let raw = RawLimits {
            directory_rejects: 50,
            directory_lockout_threshold: Some(0),
            ..RawLimits::default()
        };
        assert!(Limits::from_raw(&raw, "").is_ok());
        let below = RawLimits {
            directory_rejects: 9,
            directory_lockout_threshold: Some(10),
            ..RawLimits::default()
        };
        assert!(Limits::from_raw(&below, "").is_ok());
    }
}
