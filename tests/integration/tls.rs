//! The federation listener serves HTTPS when given a certificate and key, plain HTTP without.

use std::process::Stdio;

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::roost_command;

#[tokio::test]
async fn federation_listener_speaks_tls_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let mut child = roost_command(&dir.path().join("db"))
        .env("ROOST_LISTENERS__FEDERATION", "127.0.0.1:0")
        .env("ROOST_LISTENERS__TLS_CERT", &cert_path)
        .env("ROOST_LISTENERS__TLS_KEY", &key_path)
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let federation = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening federation ") {
                return url.to_owned();
            }
        }
        panic!("no federation listener");
    })
    .await
    .unwrap();
    assert!(federation.starts_with("https://"), "{federation}");

    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let res = client
        .get(format!("{federation}/_matrix/key/v2/server"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let keys: serde_json::Value = res.json().await.unwrap();
    assert_eq!(keys["server_name"], "localhost");
    // Plain HTTP on the TLS port is refused rather than served.
    let plain =
        reqwest::get(federation.replacen("https", "http", 1) + "/_matrix/federation/v1/version")
            .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_certificate_that_does_not_load_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = roost_command(&dir.path().join("db"))
        .env("ROOST_LISTENERS__FEDERATION", "127.0.0.1:0")
        .env("ROOST_LISTENERS__TLS_CERT", dir.path().join("missing.pem"))
        .env(
            "ROOST_LISTENERS__TLS_KEY",
            dir.path().join("missing-key.pem"),
        )
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tls_cert") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
