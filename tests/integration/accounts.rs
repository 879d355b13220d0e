//! Accounts: the admin CLI, concurrent registration of one name.

use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Server, roost_command, unique};

#[tokio::test]
async fn admin_cli_creates_users_and_registration_tokens_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = roost_command(dir.path())
        .args([
            "admin",
            "create-user",
            "boss",
            "--admin",
            "--password",
            "boss-password",
        ])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("@boss:localhost (admin)"));
    let out = roost_command(dir.path())
        .args(["admin", "create-registration-token", "--uses", "1"])
        .stdout(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let server = Server::start_in(dir.path(), &[("ROOST_REGISTRATION__MODE", "token")]).await;
    let (status, _) = server.login("boss", "boss-password").await;
    assert_eq!(status, StatusCode::OK);

    let register = |name: &str, session: Option<&str>| {
        let mut body = json!({"username": name, "password": "pw"});
        if let Some(s) = session {
            body["auth"] =
                json!({"type": "m.login.registration_token", "token": token, "session": s});
        }
        body
    };
    let (_, first) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(register("newbie", None)),
        )
        .await;
    let session = first["session"].as_str().unwrap();
    let (status, res) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(register("newbie", Some(session))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");

    // The token allowed one use: a second registration is refused.
    let (_, first) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(register("second", None)),
        )
        .await;
    let session = first["session"].as_str().unwrap();
    let (status, res) = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(register("second", Some(session))),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{res}");
    assert_eq!(res["errcode"], "M_UNAUTHORIZED");
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_create_one_account() {
    let server = Server::start().await;
    let name = unique("race");
    let attempts = (0..8).map(|_| {
        let server = &server;
        let name = name.clone();
        async move {
            let body = json!({"username": name, "password": "pw"});
            let (_, first) = server
                .request(
                    Method::POST,
                    "/_matrix/client/v3/register",
                    None,
                    Some(body.clone()),
                )
                .await;
            let Some(session) = first["session"].as_str() else {
                return (StatusCode::BAD_REQUEST, first);
            };
            let mut body = body;
            body["auth"] = json!({"type": "m.login.dummy", "session": session});
            server
                .request(
                    Method::POST,
                    "/_matrix/client/v3/register",
                    None,
                    Some(body),
                )
                .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errcode"], "M_USER_IN_USE");
    }
}
