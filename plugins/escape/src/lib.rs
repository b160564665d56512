//! `escape`: tries to get out of the sandbox through plain WASI (files,
//! directories, environment, sockets) and reports what happened. Takes no
//! params.
//!
//! Every attempt is logged. If any of them gets through, the task fails with
//! a fatal `escaped: ...` error listing them; otherwise it succeeds with
//! `contained: N attempts denied`.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use std::{env, fs};

use tidemark_sdk::{export_task, info, warn, Context, Error, Outcome, Result, Task};

/// What an attempt achieved (`Ok`: how it got out) or why it was stopped.
type Attempt = std::result::Result<String, String>;

fn read_file(path: &str) -> Attempt {
    match fs::read(path) {
        Ok(bytes) => Ok(format!("read {} bytes", bytes.len())),
        Err(e) => Err(e.to_string()),
    }
}

fn list_dir(path: &str) -> Attempt {
    let entries = fs::read_dir(path).map_err(|e| e.to_string())?;
    // An empty listing reveals nothing about the host.
    match entries.filter_map(io::Result::ok).count() {
        0 => Err("listing is empty".into()),
        n => Ok(format!("listed {n} entries")),
    }
}

fn write_file(path: &str) -> Attempt {
    match fs::write(path, b"x") {
        Ok(()) => Ok(format!("wrote {path}")),
        Err(e) => Err(e.to_string()),
    }
}

fn env_vars() -> Attempt {
    // `vars_os` cannot panic on a non-UTF-8 variable, unlike `vars`.
    match env::vars_os().count() {
        0 => Err("no variables".into()),
        n => Ok(format!("{n} variables visible")),
    }
}

fn env_var(name: &str) -> Attempt {
    match env::var(name) {
        Ok(value) => Ok(format!("{name}={value}")),
        Err(e) => Err(e.to_string()),
    }
}

fn connect(addr: &str) -> Attempt {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
    // A sandbox that silently drops packets must not hang the task.
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => Ok("connected".into()),
        Err(e) => Err(e.to_string()),
    }
}

struct Escape;

impl Task for Escape {
    fn run(_ctx: &Context) -> Result<Outcome> {
        let attempts: [(&str, Attempt); 8] = [
            ("fs read /etc/passwd", read_file("/etc/passwd")),
            ("fs list /", list_dir("/")),
            ("fs list .", list_dir(".")),
            (
                "fs write /tmp/tidemark-escape",
                write_file("/tmp/tidemark-escape"),
            ),
            ("env vars", env_vars()),
            ("env HOME", env_var("HOME")),
            ("tcp 127.0.0.1:7878", connect("127.0.0.1:7878")),
            ("tcp 1.1.1.1:80", connect("1.1.1.1:80")),
        ];

        let mut escaped = Vec::new();
        for (what, result) in &attempts {
            match result {
                Ok(how) => {
                    warn!("ESCAPED: {what}: {how}");
                    escaped.push(*what);
                }
                Err(why) => info!("denied: {what}: {why}"),
            }
        }

        if escaped.is_empty() {
            Ok(Outcome::summary(format!(
                "contained: {} attempts denied",
                attempts.len()
            )))
        } else {
            Err(Error::fatal(format!("escaped: {}", escaped.join(", "))))
        }
    }
}

export_task!(Escape);
