//! Writes a private FreeRADIUS configuration: a copy of the packaged raddb with our own radiusd.conf settings,
//! clients, users, counters and two virtual servers (`portvakt` on our ports, and `inner-tunnel` for PEAP/TTLS).
//!
//! The packaged sites are not enabled: `default` binds the standard ports and the packaged `inner-tunnel` binds
//! 127.0.0.1:18120, which would collide between parallel instances. The sites below are our own text.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use super::users;
use crate::support::{Error, Result, write_file};

/// Where Debian's freeradius-config package puts the configuration we copy.
pub(super) const PACKAGED_RADDB: &str = "/etc/freeradius/3.0";

/// The linelog files the counters write, relative to the instance's log directory.
pub(super) const ACCESS_LOG: &str = "access-requests.log";
pub(super) const ACCOUNTING_LOG: &str = "accounting-requests.log";

/// What the written configuration depends on.
pub(super) struct Settings<'a> {
    pub(super) secret: &'a str,
    pub(super) require_message_authenticator: bool,
    pub(super) sign_replies: bool,
    pub(super) numbered_users: usize,
}

/// Where the instance listens.
pub(super) struct Listen {
    pub(super) auth: SocketAddr,
    pub(super) acct: SocketAddr,
    pub(super) auth_v6: Option<SocketAddr>,
    pub(super) acct_v6: Option<SocketAddr>,
}

/// Copies the packaged raddb into `root/raddb` and writes everything except the listen sections.
pub(super) fn write_raddb(root: &Path, settings: &Settings<'_>) -> Result<()> {
    let raddb = root.join("raddb");
    let packaged = Path::new(PACKAGED_RADDB);
    if !packaged.join("radiusd.conf").is_file() {
        return Err(Error::MissingPeer(
            "freeradius (/etc/freeradius/3.0/radiusd.conf)",
        ));
    }
    copy_tree(packaged, &raddb)?;
    for dir in ["log", "run"] {
        let path = root.join(dir);
        fs::create_dir_all(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    }
    let radiusd_conf = raddb.join("radiusd.conf");
    let packaged_text = crate::support::read_file(&radiusd_conf)?;
    write_file(&radiusd_conf, rewrite_radiusd_conf(&packaged_text, root)?)?;
    empty_dir(&raddb.join("sites-enabled"))?;
    write_file(&raddb.join("sites-enabled/inner-tunnel"), INNER_TUNNEL)?;
    write_file(&raddb.join("clients.conf"), clients_conf(settings))?;
    write_file(
        &raddb.join("mods-config/files/authorize"),
        users::users_file(settings.numbered_users),
    )?;
    write_file(&raddb.join("mods-enabled/portvakt_counters"), COUNTERS)?;
    Ok(())
}

/// (Re)writes the outer virtual server with its listen sections; called for every set of ports tried.
pub(super) fn write_site(root: &Path, settings: &Settings<'_>, listen: &Listen) -> Result<()> {
    let sign = if settings.sign_replies {
        SIGN_REPLY
    } else {
        ""
    };
    let site = OUTER_SITE
        .replace("@LISTEN@", &listen_sections(listen))
        .replace("@SIGN@", sign)
        .replace("@CAROL@", users::CAROL.name)
        .replace("@CAROL_PASSWORD@", users::CAROL.password)
        .replace("@CAROL_CODE@", users::CAROL_CODE)
        .replace("@CAROL_CHALLENGE@", users::CAROL_CHALLENGE_MESSAGE)
        .replace("@CAROL_WELCOME@", users::CAROL_WELCOME_MESSAGE);
    write_file(&root.join("raddb/sites-enabled/portvakt"), site)
}

/// Points radiusd.conf at the temporary directory and sets the test-friendly knobs. Every key must be found
/// exactly where we expect it, so a changed packaged file fails loudly instead of half-applying.
fn rewrite_radiusd_conf(text: &str, root: &Path) -> Result<String> {
    let root = root.display();
    let replacements: [(&str, String); 9] = [
        ("raddbdir", format!("raddbdir = \"{root}/raddb\"")),
        ("logdir", format!("logdir = \"{root}/log\"")),
        ("run_dir", format!("run_dir = \"{root}/run\"")),
        // Stay the user running the tests (root in CI), so the instance can write its own directory and read
        // the snakeoil key (root:ssl-cert 0640).
        ("user", "#user = freerad".to_owned()),
        ("group", "#group = freerad".to_owned()),
        ("colourise", "colourise = no".to_owned()),
        // The default 1 s would delay every Reject, and reject-heavy tests would measure the delay.
        ("reject_delay", "reject_delay = 0".to_owned()),
        ("max_requests", "max_requests = 65536".to_owned()),
        // The directory never proxies; this also keeps it from opening proxy sockets.
        ("proxy_requests", "proxy_requests = no".to_owned()),
    ];
    let mut found = [false; 9];
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let key = line
                .split(|c: char| c.is_whitespace() || c == '=')
                .find(|w| !w.is_empty());
            let hit = replacements
                .iter()
                .position(|(k, _)| Some(*k) == key && line.contains('='));
            match hit {
                Some(i) => {
                    found[i] = true;
                    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                    format!("{indent}{}", replacements[i].1)
                }
                None => line.to_owned(),
            }
        })
        .collect();
    if let Some(i) = found.iter().position(|f| !f) {
        return Err(Error::Unsupported(format!(
            "the packaged radiusd.conf has no `{} =` line; the harness expects Debian 12's FreeRADIUS 3.2",
            replacements[i].0
        )));
    }
    Ok(lines.join("\n") + "\n")
}

fn clients_conf(settings: &Settings<'_>) -> String {
    let require = if settings.require_message_authenticator {
        "yes"
    } else {
        "no"
    };
    let secret = settings.secret;
    format!(
        "client loopback4 {{\n\tipaddr = 127.0.0.1\n\tsecret = \"{secret}\"\n\tshortname = loopback4\n\
         \trequire_message_authenticator = {require}\n}}\n\
         client loopback6 {{\n\tipv6addr = ::1\n\tsecret = \"{secret}\"\n\tshortname = loopback6\n\
         \trequire_message_authenticator = {require}\n}}\n"
    )
}

fn listen_sections(listen: &Listen) -> String {
    let sockets = [
        ("auth", Some(listen.auth)),
        ("acct", Some(listen.acct)),
        ("auth", listen.auth_v6),
        ("acct", listen.acct_v6),
    ];
    sockets
        .iter()
        .filter_map(|(kind, addr)| addr.map(|addr| listen_section(kind, addr)))
        .collect()
}

fn listen_section(kind: &str, addr: SocketAddr) -> String {
    let ip_key = if addr.is_ipv4() { "ipaddr" } else { "ipv6addr" };
    // recv_buff: with the kernel default (about 208 KiB) FreeRADIUS drops packets above ~150 in flight.
    format!(
        "listen {{\n\ttype = {kind}\n\t{ip_key} = {}\n\tport = {}\n\trecv_buff = 4194304\n}}\n",
        addr.ip(),
        addr.port()
    )
}

/// Copies a directory tree, keeping symlinks as symlinks (mods-enabled and sites-enabled are relative links).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let entries =
        fs::read_dir(from).map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(format!("inspecting {}", source.display()), e))?;
        let copied = if kind.is_symlink() {
            fs::read_link(&source).and_then(|link| std::os::unix::fs::symlink(link, &target))
        } else if kind.is_dir() {
            copy_tree(&source, &target)?;
            Ok(())
        } else {
            fs::copy(&source, &target).map(drop) // fs::copy keeps the permission bits
        };
        copied.map_err(|e| {
            Error::io(
                format!("copying {} (run the tests as root)", source.display()),
                e,
            )
        })?;
    }
    Ok(())
}

fn empty_dir(dir: &Path) -> Result<()> {
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
            .path();
        fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    Ok(())
}

/// `Message-Authenticator := 0x00` in the reply: FreeRADIUS computes the real value when it encodes the packet.
/// 3.2.1 predates BlastRADIUS (CVE-2024-3596) and never signs non-EAP replies on its own; this makes it act like a
/// patched server.
const SIGN_REPLY: &str = "update reply {\n\t\t&Message-Authenticator := 0x00\n\t}";

/// Two linelog instances that write one line (the User-Name) per request that reached the virtual server:
/// the directory's own count of what it saw. Retransmits answered from FreeRADIUS's duplicate cache are not counted.
const COUNTERS: &str = r#"# Generated by portvakt's test harness: one line per request the directory processed.
linelog portvakt_access_requests {
	filename = ${logdir}/access-requests.log
	permissions = 0600
	format = "%{User-Name}"
}
linelog portvakt_accounting_requests {
	filename = ${logdir}/accounting-requests.log
	permissions = 0600
	format = "%{User-Name}"
}
"#;

/// The outer virtual server. carol's challenge keeps "password ok" in session-state, which FreeRADIUS stores under
/// the State it adds to the Access-Challenge and restores only when that State comes back.
const OUTER_SITE: &str = r#"# Generated by portvakt's test harness (tests/integration/support/freeradius/config.rs).
server portvakt {
@LISTEN@
authorize {
	@SIGN@
	portvakt_access_requests
	if (&User-Name == "@CAROL@") {
		if (&session-state:Tmp-String-0 == "carol-password-ok") {
			if (&User-Password == "@CAROL_CODE@") {
				update reply {
					&Reply-Message := "@CAROL_WELCOME@"
				}
				update control {
					&Auth-Type := Accept
				}
				ok
				return
			}
			reject
		}
		if (&User-Password == "@CAROL_PASSWORD@") {
			update session-state {
				&Tmp-String-0 := "carol-password-ok"
			}
			update reply {
				&Reply-Message := "@CAROL_CHALLENGE@"
			}
			update control {
				&Response-Packet-Type := Access-Challenge
			}
			handled
		}
		reject
	}
	chap
	mschap
	eap {
		ok = return
	}
	files
	pap
	Autz-Type Status-Server {
		@SIGN@
		ok
	}
}
authenticate {
	Auth-Type PAP {
		pap
	}
	Auth-Type CHAP {
		chap
	}
	Auth-Type MS-CHAP {
		mschap
	}
	mschap
	eap
}
preacct {
}
accounting {
	portvakt_accounting_requests
	ok
}
session {
}
post-auth {
	Post-Auth-Type REJECT {
		attr_filter.access_reject
		@SIGN@
	}
	Post-Auth-Type Challenge {
		@SIGN@
	}
}
}
"#;

/// The inner virtual server for PEAP and TTLS, without the packaged one's fixed 127.0.0.1:18120 listener.
const INNER_TUNNEL: &str = r#"# Generated by portvakt's test harness (tests/integration/support/freeradius/config.rs).
server inner-tunnel {
authorize {
	chap
	mschap
	eap {
		ok = return
	}
	files
	pap
}
authenticate {
	Auth-Type PAP {
		pap
	}
	Auth-Type CHAP {
		chap
	}
	Auth-Type MS-CHAP {
		mschap
	}
	mschap
	eap
}
session {
}
post-auth {
	Post-Auth-Type REJECT {
		attr_filter.access_reject
	}
}
}
"#;
