//! `portvakt lockouts`: which accounts are locked, why, and until when.
//!
//! The rows are the store's (`crate::store::LockoutRow`), written by the daemon when it locks
//! an account. By default only lockouts in force are listed; `--all` adds ended ones (kept
//! for a while because a repeat lockout lasts longer) and ones an administrator lifted.
//! `portvakt user unlock NAME` lifts one.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{CliError, CliIo};
use crate::store::{LockoutRow, Store, format_time};

/// `portvakt lockouts [--all] [--json]`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct LockoutsCommand {
    /// Also list ended lockouts and lifted ones.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One listed lockout, as JSON shows it.
#[derive(Debug, Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    row: &'a LockoutRow,
    /// In force now.
    active: bool,
    /// Seconds until it ends (0 if not in force).
    remaining_secs: u64,
}

/// Runs `portvakt lockouts` against `store`.
pub fn run(store: &Store, cmd: LockoutsCommand, io: &mut CliIo<'_>) -> Result<(), CliError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    list(store, &cmd, now, io)
}

/// The listing as of `now` (Unix seconds).
fn list(
    store: &Store,
    cmd: &LockoutsCommand,
    now: u64,
    io: &mut CliIo<'_>,
) -> Result<(), CliError> {
    let rows: Vec<LockoutRow> = store
        .lockouts()?
        .into_iter()
        .filter(|r| cmd.all || r.is_active(now))
        .collect();
    let out = io.out();
    if cmd.json {
        let listed: Vec<Listed<'_>> = rows
            .iter()
            .map(|row| Listed {
                row,
                active: row.is_active(now),
                remaining_secs: remaining(row, now),
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &listed).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if rows.is_empty() {
        let what = if cmd.all {
            "No lockouts recorded."
        } else {
            "No account is locked."
        };
        writeln!(out, "{what}")?;
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:width$}  {:22}  {:20}  {:20}  {:5}  STATE",
        "USER", "REASON", "LOCKED AT", "UNTIL", "LEVEL"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:width$}  {:22}  {:20}  {:20}  {:5}  {}",
            r.name,
            r.reason.describe(),
            format_time(r.locked_at),
            format_time(r.locked_until),
            r.level,
            state(r, now)
        )?;
    }
    let active = rows.iter().filter(|r| r.is_active(now)).count();
    writeln!(out, "{active} account(s) locked.")?;
    Ok(())
}

fn remaining(row: &LockoutRow, now: u64) -> u64 {
    if row.is_active(now) {
        row.locked_until - now
    } else {
        0
    }
}

/// `locked, 12m left`, `ended`, or `unlocked 2026-…Z`.
fn state(row: &LockoutRow, now: u64) -> String {
    match row.unlocked_at {
        Some(at) => format!("unlocked {}", format_time(at)),
        None if row.is_active(now) => {
            // Whole minutes (rounded up) are enough to tell a caller when to try again.
            let minutes = remaining(row, now).div_ceil(60);
            format!("locked, {minutes}m left")
        }
        None => "ended".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LockReason;

    fn row(until: u64, unlocked_at: Option<u64>) -> LockoutRow {
        LockoutRow {
            name: "alice".into(),
            reason: LockReason::SecondFactor,
            locked_at: until - 900,
            locked_until: until,
            level: 1,
            unlocked_at,
        }
    }

    #[test]
    fn the_state_column_says_what_holds() {
        assert_eq!(state(&row(1_000, None), 100), "locked, 15m left");
        assert_eq!(state(&row(1_000, None), 999), "locked, 1m left");
        assert_eq!(state(&row(1_000, None), 1_000), "ended");
        assert_eq!(
            state(&row(1_000, Some(0)), 100),
            "unlocked 1970-01-01T00:00:00Z"
        );
        assert_eq!(remaining(&row(1_000, None), 400), 600);
        assert_eq!(remaining(&row(1_000, Some(0)), 400), 0);
    }
}
