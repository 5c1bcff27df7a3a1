//! Starts the test servers, prints where they run, and keeps them until standard input closes.
//!
//! The testkit's own tests run it to check that a killed or finished process leaves no server
//! behind. It also gives a developer a throwaway PostgreSQL and S3:
//! `cargo run -p partner-feed-testkit --bin hold-test-servers`, then Ctrl-D to stop them.
//!
//! Output, one line per running server, then `ready`:
//! `postgres pid=PID dir=FOLDER url=URL` and `s3 pid=PID dir=FOLDER endpoint=URL`, followed by
//! one `env NAME=VALUE` line per variable of [`S3Server::env`](partner_feed_testkit::S3Server::env).

use std::io::{self, Write};

fn main() -> io::Result<()> {
    let mut out = io::stdout().lock();
    if let Some(server) = partner_feed_testkit::postgres() {
        writeln!(
            out,
            "postgres pid={} dir={} url={}",
            server.pid(),
            server.dir().display(),
            server.url("postgres")
        )?;
    }
    if let Some(server) = partner_feed_testkit::s3() {
        writeln!(
            out,
            "s3 pid={} dir={} endpoint={}",
            server.pid(),
            server.dir().display(),
            server.endpoint()
        )?;
        for (name, value) in server.env() {
            writeln!(out, "env {name}={value}")?;
        }
    }
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);

    io::copy(&mut io::stdin().lock(), &mut io::sink())?;
    Ok(())
}
