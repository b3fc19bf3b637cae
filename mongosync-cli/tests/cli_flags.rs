//! The command line: `-v` is the version, `--help`, and one-line errors with a non-zero exit
//! for an unknown flag, an unknown `--config` key, a missing cluster and a bad connection
//! string, never echoing a password; flags win over the file.

mod common;

use std::process::Command;

const SECRET: &str = "hunter2-Pw";

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::binary()).args(args).output().unwrap();
    let (o, e) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        !o.contains(SECRET) && !e.contains(SECRET),
        "a password in the output: {o}{e}"
    );
    (out.status.code().unwrap(), o, e)
}

fn one_line_error(args: &[&str], names: &str) -> String {
    let (code, out, err) = run(args);
    assert_ne!(code, 0, "{args:?}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(names), "{err} does not name {names}");
    err
}

#[test]
fn version_help_and_one_line_errors() {
    for v in ["-v", "--version"] {
        let (code, out, _) = run(&[v]);
        assert_eq!(code, 0);
        assert!(out.starts_with("mongosync "), "{out}");
    }
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--cluster0",
        "--cluster1",
        "--port",
        "--config",
        "--logPath",
        "--verbosity",
        "--id",
        "--loadLevel",
        "--acceptDisclaimer",
        "--disableVerification",
        "-v, --version",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }

    let uri = format!("mongodb://admin:{SECRET}@127.0.0.1:1/");
    one_line_error(
        &["--cluster0", &uri, "--cluster1", &uri, "--colour"],
        "--colour",
    );
    one_line_error(&["--cluster0", &uri], "--cluster1");
    one_line_error(&["--cluster1", &uri], "--cluster0");
    let bad = format!("mongodb://admin:{SECRET}@");
    one_line_error(&["--cluster0", &bad, "--cluster1", &uri], "--cluster0");
    let bad = format!("postgres://admin:{SECRET}@h/");
    one_line_error(&["--cluster0", &uri, "--cluster1", &bad], "--cluster1");
    one_line_error(
        &[
            "--cluster0",
            &uri,
            "--cluster1",
            &uri,
            "--verbosity",
            "LOUD",
        ],
        "--verbosity",
    );
    one_line_error(
        &["--cluster0", &uri, "--cluster1", &uri, "--loadLevel", "9"],
        "--loadLevel",
    );

    let dir = std::env::temp_dir().join(format!("mongosync-cli-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mongosync.yaml");
    std::fs::write(
        &file,
        format!("cluster0: {uri}\ncluster1: {uri}\nclusterTwo: x\n"),
    )
    .unwrap();
    one_line_error(&["--config", file.to_str().unwrap()], "clusterTwo");
    std::fs::write(
        &file,
        format!("cluster0: {uri}\ncluster1: {uri}\nverbosity: loud\n"),
    )
    .unwrap();
    one_line_error(&["--config", file.to_str().unwrap()], "verbosity");
    // The flag wins over the file: its bad value is the one reported.
    std::fs::write(&file, format!("cluster0: {uri}\ncluster1: {uri}\n")).unwrap();
    let bad = format!("mongodb+srv://admin:{SECRET}@a:1,b:2/");
    let err = one_line_error(
        &["--config", file.to_str().unwrap(), "--cluster1", &bad],
        "--cluster1",
    );
    assert!(err.contains("mongodb+srv://admin:<redacted>@"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bind_to_a_non_loopback_address_warns_that_the_api_is_unauthenticated() {
    use std::io::BufRead;
    // Nothing listens at the clusters' address: the warning comes before any connection.
    let uri = format!("mongodb://admin:{SECRET}@127.0.0.1:9/?serverSelectionTimeoutMS=60000");
    let mut child = Command::new(common::binary())
        .args([
            "--cluster0",
            &uri,
            "--cluster1",
            &uri,
            "--bind",
            "0.0.0.0",
            "--port",
            "0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.starts_with("mongosync: warning: "), "{line}");
    assert!(
        line.contains("0.0.0.0") && line.contains("no authentication"),
        "{line}"
    );
    assert!(!line.contains(SECRET));
}
