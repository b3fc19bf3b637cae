//! The dashboard in a real headless browser (Debian's Chromium) against a live sync: what it
//! shows in IDLE (a start button, no commit button) and once `canCommit` (RUNNING, the copy at
//! 100 %, the namespaces, the commit button), with a screenshot saved under the target
//! directory. Without Chromium the test skips with a message, except in CI (`CI=true`), where
//! it fails.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Mongosync, Writer, cluster, state};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
    if path.exists() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "Chromium is missing at {} (CI=true): run scripts/test-cli.sh, which installs it",
        path.display()
    );
    eprintln!(
        "SKIPPED: Chromium is missing at {}; install it with `apt-get install -y chromium` (scripts/test-cli.sh does)",
        path.display()
    );
    None
}

/// Runs headless Chromium on `url` with `extra` arguments; returns its stdout.
async fn browse(browser: &Path, profile: &Path, url: &str, extra: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,900",
        // Virtual time runs the page's timers and fetches for 4 s of page time, then stops.
        "--virtual-time-budget=4000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium hung")
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let profile =
        std::env::temp_dir().join(format!("mongosync-cli-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&profile).unwrap();

    let (c0, c1) = (cluster().await, cluster().await);
    common::seed(&c0.client, "shop", "orders", 2000).await;
    let m = Mongosync::spawn(&c0.uri, &c1.uri, &[]).await;
    m.wait_progress(|p| state(p) == "IDLE").await;
    let url = format!("http://127.0.0.1:{}/", m.port);

    let dom = browse(&browser, &profile, &url, &["--dump-dom"]).await;
    assert!(dom.contains(r#"data-state="IDLE""#), "{dom}");
    assert!(dom.contains(r#"id="btn-start""#), "{dom}");
    assert!(!dom.contains(r#"id="btn-commit""#), "{dom}");

    m.post_ok(
        "/api/v1/start",
        r#"{"source": "cluster0", "destination": "cluster1"}"#,
    )
    .await;
    let writer = Writer::start(&c0.client, "shop", "orders");
    m.wait_progress(|p| p["canCommit"] == true && p["totalEventsApplied"].as_u64() > Some(50))
        .await;

    let dom = browse(&browser, &profile, &url, &["--dump-dom"]).await;
    assert!(dom.contains(r#"data-state="RUNNING""#), "{dom}");
    assert!(dom.contains(r#"data-can-commit="true""#), "{dom}");
    assert!(dom.contains(r#"<span id="percent">100%</span>"#), "{dom}");
    assert!(dom.contains(r#"id="btn-commit""#), "{dom}");
    assert!(dom.contains(r#"id="btn-pause""#), "{dom}");
    assert!(dom.contains("<td>shop.orders</td>"), "{dom}");
    assert!(dom.contains("change event application"), "{dom}");

    let shot = common::target_dir().join("mongosync-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &profile,
        &url,
        &[&format!("--screenshot={}", shot.display())],
    )
    .await;
    let png = std::fs::read(&shot).expect("no screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", shot.display());

    writer.stop().await;
    let (status, _) = m.signal(15).await;
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&profile);
}
