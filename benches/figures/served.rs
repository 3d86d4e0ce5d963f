//! The service under test: the release binary in a process of its own, pinned to the first
//! core, so its memory and CPU time are its own and it can be paused while the ceiling runs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Served {
    child: Child,
    pub base: String,
}

impl Served {
    /// Starts `execwatch serve` with `args` and waits until it is ready: returns it and how
    /// long that took. It starts on every core (ingestion decodes on all of them), and is pinned
    /// to the first once ready, where it then runs alone but for this process.
    pub async fn start(args: &[String], env: &[(&str, String)]) -> (Served, Duration) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        // On every core: this process is pinned to the first, and a child inherits that (the
        // starts measured before this line ran on one core). taskset execs it: the same pid.
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_else(|_| "0".into());
        let child = Command::new("taskset")
            .args(["-c", online.trim(), env!("CARGO_BIN_EXE_execwatch")])
            .args(["--log-level", "error", "serve", "--metrics-listen", "127.0.0.1:0", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--schemas", concat!(env!("CARGO_MANIFEST_DIR"), "/schemas")])
            // No callers to review unless a figure says how they are known.
            .args(if args.iter().any(|a| a == "--auth") { &[][..] } else { &["--auth", "none"][..] })
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .spawn()
            .expect("the service starts");
        let served = Served { child, base };
        let http = reqwest::Client::new();
        let deadline = started + Duration::from_secs(600);
        loop {
            let ready = http.get(format!("{}/readyz", served.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                let ready = started.elapsed();
                // Every thread, and those it starts later inherit it.
                let pid = served.child.id().to_string();
                let pinned = Command::new("taskset").args(["-a", "-cp", "0", &pid]).output();
                assert!(pinned.is_ok_and(|o| o.status.success()), "taskset pins the service");
                return (served, ready);
            }
            assert!(Instant::now() < deadline, "the service was not ready within 10 minutes");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let line = status.lines().find(|l| l.starts_with(field)).expect("field");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> u64 {
        self.status("VmRSS:")
    }

    /// The highest resident memory so far, in bytes.
    pub fn peak(&self) -> u64 {
        self.status("VmHWM:")
    }

    /// Lets it run on every core again: a figure of work that uses both (insights: the archive's
    /// reader and the counting thread side by side).
    pub fn unpin(&self) {
        // The machine's cores, not this process's: it is pinned to one, and
        // `available_parallelism` counts only those it may run on.
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("the online cores");
        let unpinned =
            Command::new("taskset").args(["-a", "-cp", online.trim(), &self.child.id().to_string()]).output();
        assert!(unpinned.is_ok_and(|o| o.status.success()), "taskset unpins the service");
    }

    /// Starts counting the highest resident memory again from now (`VmHWM`).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// CPU time used so far (user and system), in seconds.
    pub fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("stat");
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..].split(' ').collect();
        let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
        (ticks(11) + ticks(12)) / clock_ticks()
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
    }

    /// Stops it while the ceiling runs, so no work of its own can steal the ceiling's core.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Stops it as Kubernetes does (SIGTERM), waiting up to 30 s for its shutdown (what it
    /// still had to write goes to the archive or its spool); then `Drop` kills it.
    pub fn stop(mut self) {
        self.resume();
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Once `stop` has reaped it, its pid may be another process's: nothing to signal.
        if let Ok(None) = self.child.try_wait() {
            self.resume();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Clock ticks per second, the unit of `/proc/PID/stat` times.
fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).trim().parse().unwrap_or(100.0)
}
