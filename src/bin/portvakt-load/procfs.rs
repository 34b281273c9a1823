//! CPU time and memory of processes, from `/proc`: what a request costs the processes
//! under test, and what it costs the generator itself.

use std::fs;

/// Clock ticks per second in `/proc/<pid>/stat`. Linux fixes USER_HZ at 100 on every
/// architecture it exposes to user space (the kernel's own HZ is converted), so this needs
/// no `sysconf` call. A tick is 10 ms: runs of a few seconds make it negligible.
const USER_HZ: u64 = 100;

/// A process to watch, by a name for the report and its pid.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    /// The name in the report (`upstream`, `proxy`, …).
    pub(crate) name: String,
    /// The pid; `None` means this process (`/proc/self`).
    pub(crate) pid: Option<u32>,
}

/// One reading of a watched process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// User plus system CPU time of all its threads, in microseconds.
    pub(crate) cpu_us: u64,
    /// Resident set size in KiB.
    pub(crate) rss_kib: u64,
}

impl Watched {
    fn dir(&self) -> String {
        match self.pid {
            Some(pid) => format!("/proc/{pid}"),
            None => "/proc/self".to_owned(),
        }
    }

    /// Reads CPU time and RSS now.
    pub(crate) fn sample(&self) -> std::io::Result<Sample> {
        let dir = self.dir();
        let stat = fs::read_to_string(format!("{dir}/stat"))?;
        let cpu_us = parse_cpu_ticks(&stat)
            .ok_or_else(|| std::io::Error::other(format!("cannot parse {dir}/stat")))?
            * (1_000_000 / USER_HZ);
        let status = fs::read_to_string(format!("{dir}/status"))?;
        Ok(Sample {
            cpu_us,
            rss_kib: parse_rss_kib(&status).unwrap_or(0),
        })
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may itself contain spaces or parentheses, so fields are counted
/// from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th from here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` from `/proc/<pid>/status`, in KiB.
fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parses `name=PID`.
pub(crate) fn parse_watch(text: &str) -> Result<Watched, String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not name=PID"))?;
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("`{pid}` in `{text}` is not a pid"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has no name"));
    }
    if !std::path::Path::new(&format!("/proc/{pid}/stat")).exists() {
        return Err(format!("no process {pid} (for `{name}`)"));
    }
    Ok(Watched {
        name: name.to_owned(),
        pid: Some(pid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        // A real line's layout, with a command name holding spaces and a parenthesis.
        let line = "4242 (free radius) (x)) S 1 4242 4242 0 -1 4194624 1549 0 0 0 731 262 0 0 20 0 6 0 \
                    12345 123456789 2000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_cpu_ticks(line), Some(731 + 262));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = Watched {
            name: "self".into(),
            pid: None,
        };
        let s = me.sample().unwrap();
        assert!(s.rss_kib > 0);
        let status = "Name:\tx\nVmRSS:\t   12345 kB\nThreads:\t1\n";
        assert_eq!(parse_rss_kib(status), Some(12345));
    }

    #[test]
    fn watch_arguments() {
        let own = std::process::id();
        assert_eq!(parse_watch(&format!("proxy={own}")).unwrap().name, "proxy");
        assert!(parse_watch("proxy").is_err());
        assert!(parse_watch("proxy=abc").is_err());
        assert!(parse_watch(&format!("={own}")).is_err());
    }
}
