//! Benchmark harnesses live as binaries of this crate; this library holds what they share:
//! starting the `mongosync-testkit` command in its own process, reading settings from the
//! environment, reading `/proc` memory figures, percentiles.

pub mod workload;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The harnesses' error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A number from the environment, or `default` when unset.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, BoxError> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number").into()),
        Err(_) => Ok(default),
    }
}

/// An optional numeric setting from the environment.
pub fn env_opt<T: std::str::FromStr>(name: &str) -> Result<Option<T>, BoxError> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a number").into()),
        Err(_) => Ok(None),
    }
}

/// The release `mongosync-testkit` binary: `MONGOSYNC_TESTKIT_BIN`, else
/// `$CARGO_TARGET_DIR/release/mongosync-testkit`, else `<workspace>/target/release/...`.
pub fn testkit_bin() -> PathBuf {
    match std::env::var_os("MONGOSYNC_TESTKIT_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
            target.join("release/mongosync-testkit")
        }
    }
}

/// The `root` user of the benches' servers (a fixed test password, never printed).
pub const BENCH_USER: &str = "bench";
const BENCH_PASSWORD: &str = "bench-pass";

/// A `mongosync-testkit` process; SIGTERM on drop so it never outlives the harness.
pub struct Server {
    child: Child,
    /// The URI it printed on its first stdout line.
    pub uri: String,
}

impl Server {
    /// Spawns `bin --port 0` with authentication on and waits for its URI line; `uri` carries
    /// the credentials of its `root` user (write blocking, the syncer's default, needs a user
    /// holding `bypassWriteBlockingMode`).
    pub fn start(bin: &Path) -> Result<Server, BoxError> {
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            "0",
            "--auth-user",
            BENCH_USER,
            "--auth-password",
            BENCH_PASSWORD,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the server gets SIGTERM if the harness dies
        // without running its destructors (killed, or a panic that aborts).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e} (build it first)", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        // Reads the URI line, then keeps draining stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let mut server = Server {
            child,
            uri: String::new(),
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) if line.starts_with("mongodb://") => {
                server.uri = format!(
                    "mongodb://{BENCH_USER}:{BENCH_PASSWORD}@{}&authSource=admin",
                    &line["mongodb://".len()..]
                )
            }
            Ok(other) => return Err(format!("unexpected first line from server: {other:?}").into()),
            Err(_) => return Err("the server printed no URI within 30 s".into()),
        }
        Ok(server)
    }

    /// `uri` with the password masked, for printing.
    pub fn redacted_uri(&self) -> String {
        self.uri.replace(BENCH_PASSWORD, "****")
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resets the server's peak RSS (`VmHWM`) to its current RSS, so a later reading is the
    /// peak of what ran in between (Linux: `clear_refs` 5).
    pub fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").is_ok()
    }

    /// A field of the server's `/proc/PID/status` in KiB (`VmHWM:` is the peak RSS).
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        status_kib(&format!("/proc/{}/status", self.child.id()), field)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            let _ = self.child.kill();
            return;
        };
        // SAFETY: signalling our own child process by its pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `Field:   N kB` line of a `/proc/.../status` file, in KiB.
pub fn status_kib(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's `VmRSS` / `VmHWM` etc. in KiB.
pub fn self_kib(field: &str) -> Option<u64> {
    status_kib("/proc/self/status", field)
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS (Linux: `clear_refs` 5).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
