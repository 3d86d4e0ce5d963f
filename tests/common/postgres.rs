//! A real PostgreSQL server (Debian's `postgresql` package) started for a test in a temporary
//! directory, as an unprivileged user (`postgres` when the tests run as root), on a free
//! loopback port; stopped when dropped. Where the package is missing the test says it skipped,
//! unless `EXECWATCH_REQUIRE_CLIENTS` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// The server's data directory, options and log, as `pg_ctl` takes them.
fn pg_ctl_args(dir: &Path, port: u16) -> [String; 3] {
    let options =
        format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", dir.display());
    [dir.join("data").display().to_string(), options, dir.join("server.log").display().to_string()]
}

impl Postgres {
    /// `None` (after reporting it) where PostgreSQL is not installed.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            super::clients::missing("PostgreSQL (apt-get install postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if is_root() {
            // initdb refuses root: the directory goes to the package's unprivileged user.
            let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
            assert!(chown.is_ok_and(|s| s.success()), "chown to postgres");
        }
        let data_arg = data.display().to_string();
        run(&bin, "initdb", &["-D", &data_arg, "-U", "execwatch", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        let postgres = Postgres { dir, bin, port };
        postgres.resume();
        Some(postgres)
    }

    /// Stops the server at once, as a crash or a lost network would: clients see their
    /// connections fail.
    pub fn halt(&self) {
        let [data, ..] = pg_ctl_args(self.dir.path(), self.port);
        run(&self.bin, "pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// Starts the server (again), on the same port.
    pub fn resume(&self) {
        let [data, options, log] = pg_ctl_args(self.dir.path(), self.port);
        run(&self.bin, "pg_ctl", &["-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60", "start"]);
    }

    /// A URL for `database`, which `create` makes.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://execwatch@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database of its own for one test.
    pub fn create(&self, database: &str) {
        run(&self.bin, "createdb", &["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "execwatch", database]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = command(&self.bin, "pg_ctl", &["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// Where the server's programs are: Debian's versioned directory (the newest), else the PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten().map(|e| e.path()).collect();
    versions.sort();
    let debian = versions.into_iter().rev().map(|v| v.join("bin")).find(|b| b.join("initdb").is_file());
    debian.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find(|p| ["initdb", "pg_ctl", "createdb"].iter().all(|b| p.join(b).is_file()))
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A PostgreSQL program, as the unprivileged user when the tests run as root.
fn command(bin: &Path, program: &str, args: &[&str]) -> Command {
    let program = bin.join(program);
    let mut cmd = if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.args(args);
    cmd
}

fn run(bin: &Path, program: &str, args: &[&str]) {
    let out = command(bin, program, args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
