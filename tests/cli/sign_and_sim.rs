//! `cdpjob sign` and `cdpjob sim` as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::{Workspace, run};

#[test]
fn sign_prints_the_masked_string_and_the_vendor_signature() {
    let ws = Workspace::new();
    ws.write("body.json", r#"{"name":"牛小信","id":10001}"#);
    let mut c = ws.cmd(&[
        "sign",
        "--access-key",
        "fme2na3kdi3ki",
        "--action",
        "send",
        "--biz-type",
        "1",
        "--ts",
        "1655710885431",
        "--body",
        "body.json",
    ]);
    c.env("NXCLOUD_ACCESS_SECRET", "abciiiko2k3");
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "string to sign: accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431&body={\"name\":\"牛小信\",\"id\":10001}&accessSecret=<$NXCLOUD_ACCESS_SECRET, 11 characters>\nalgorithm: md5\nsign: 87c3560d3331ae23f1021e2025722354\n"
    );
    assert!(!out.stdout.contains("abciiiko2k3") && !out.stderr.contains("abciiiko2k3"));
}

#[test]
fn sign_reads_the_body_from_stdin_and_warns_of_a_final_newline() {
    let ws = Workspace::new();
    let mut c = ws.cmd(&[
        "sign",
        "--access-key",
        "k",
        "--ts",
        "1",
        "--body",
        "-",
        "--algorithm",
        "sha256",
    ]);
    c.env("NXCLOUD_ACCESS_SECRET", "s").write_stdin("{}\n");
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("accessKey=k&action=mt&bizType=2&ts=1&body={}\n&accessSecret="),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("algorithm: sha256"));
    assert!(out.stderr.contains("ends with a newline"), "{}", out.stderr);
}

#[test]
fn sign_without_a_secret_in_the_environment_is_exit_2() {
    let ws = Workspace::new();
    let mut c = ws.cmd(&["sign", "--access-key", "k"]);
    c.env_remove("NXCLOUD_ACCESS_SECRET");
    let out = run(c);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("NXCLOUD_ACCESS_SECRET is not set"),
        "{}",
        out.stderr
    );
}

/// Kills the child on drop so a failing test leaves no server behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sim_serves_on_an_ephemeral_port_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.jsonl");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cdpjob"))
            .args(["sim", "--listen", "127.0.0.1:0", "--state"])
            .arg(&state)
            .env_remove("NXCLOUD_ACCESS_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{line}"));
    cdpjob::api::client::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stats = rt.block_on(async {
        reqwest::get(format!("{url}/__sim/stats"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(stats.contains("\"requests\":0"), "{stats}");
    let unsigned = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/saas/cdp/openapi/customers/query"))
            .body("{}")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(unsigned.contains("\"code\":1001"), "{unsigned}");
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(state.exists(), "the state file was created");
}

/// A body file that is not there is the command line's fault: exit 2, not "try again".
#[test]
fn sign_with_a_missing_body_file_is_exit_2() {
    let out = crate::common::run({
        let mut c = crate::common::cdpjob();
        c.args([
            "sign",
            "--access-key",
            "k",
            "--body",
            "/nonexistent/body.json",
        ])
        .env("NXCLOUD_ACCESS_SECRET", "s");
        c
    });
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/body.json"),
        "{}",
        out.stderr
    );
}
