//! Configuration: env-only start, unknown keys and bad values fail naming the key,
//! `check-config`.

use std::process::Stdio;

use reqwest::{Method, StatusCode};

use crate::harness::{Server, assert_error, roost_command};

async fn check_config(
    dir: &std::path::Path,
    file: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut cmd = roost_command(dir);
    if let Some(f) = file {
        cmd.arg("--config").arg(f);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .arg("check-config")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn unknown_keys_and_bad_values_fail_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[registration]\nmoed = \"open\"\n").unwrap();
    let (ok, text) = check_config(dir.path(), Some(&file), &[]).await;
    assert!(!ok && text.contains("moed"), "{text}");

    // Environment errors name the key as the variable spells it (REGISTRATION.MODE).
    let (ok, text) = check_config(
        dir.path(),
        None,
        &[("ROOST_REGISTRATION__MODE", "sometimes")],
    )
    .await;
    assert!(
        !ok && text.to_lowercase().contains("registration.mode"),
        "{text}"
    );

    let (ok, text) = check_config(
        dir.path(),
        None,
        &[("ROOST_LISTENERS__CLIENT", "not-an-address")],
    )
    .await;
    assert!(
        !ok && text.to_lowercase().contains("listeners.client"),
        "{text}"
    );

    let (ok, text) = check_config(dir.path(), None, &[("ROOST_BOGUS_KEY", "1")]).await;
    assert!(!ok && text.to_lowercase().contains("bogus_key"), "{text}");
}

#[tokio::test]
async fn shipped_config_checks_and_env_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let (ok, text) = check_config(
        dir.path(),
        Some(&shipped),
        &[("ROOST_SERVER_NAME", "env.example")],
    )
    .await;
    assert!(ok, "{text}");
    assert!(
        text.contains("server_name = \"env.example\""),
        "env wins over the file: {text}"
    );
}

#[tokio::test]
async fn registration_modes_are_enforced() {
    let server = Server::start_with(&[("ROOST_REGISTRATION__MODE", "disabled")]).await;
    let res = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(serde_json::json!({"username": "x"})),
        )
        .await;
    assert_error(&res, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let server = Server::start_with(&[("ROOST_REGISTRATION__MODE", "token")]).await;
    let (status, body) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(serde_json::json!({"username": "y"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["flows"],
        serde_json::json!([{"stages": ["m.login.registration_token"]}])
    );
}
