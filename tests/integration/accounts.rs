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

/// Authenticated tokens are cached in memory: every way a token dies must still kill it at
/// once, even right after it was used (and so cached). Roost-specific for the refresh case
/// (the old access token stops working at the refresh itself).
#[tokio::test]
async fn a_cached_token_dies_with_its_refresh_its_device_or_a_relogin() {
    let roost = Server::start().await;
    let name = unique("cache");
    let (user_id, first, _) = roost.register(&name, "Pa55-word-cache").await;
    let whoami = |token: String| {
        let roost = &roost;
        async move {
            roost
                .request(
                    Method::GET,
                    "/_matrix/client/v3/account/whoami",
                    Some(&token),
                    None,
                )
                .await
                .0
        }
    };
    let login = |device: &'static str, refresh: bool| {
        let roost = &roost;
        let user_id = user_id.clone();
        async move {
            let body = json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": user_id },
                "password": "Pa55-word-cache",
                "device_id": device,
                "refresh_token": refresh,
            });
            let (status, res) = roost
                .request(Method::POST, "/_matrix/client/v3/login", None, Some(body))
                .await;
            assert_eq!(status, StatusCode::OK, "{res}");
            res
        }
    };
    assert_eq!(whoami(first.clone()).await, StatusCode::OK);

    // Refresh: the old access token goes at once.
    let with_refresh = login("REFRESHED", true).await;
    let old = with_refresh["access_token"].as_str().unwrap().to_owned();
    assert_eq!(whoami(old.clone()).await, StatusCode::OK);
    let (status, new) = roost
        .request(
            Method::POST,
            "/_matrix/client/v3/refresh",
            None,
            Some(json!({ "refresh_token": with_refresh["refresh_token"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{new}");
    assert_eq!(whoami(old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        whoami(new["access_token"].as_str().unwrap().to_owned()).await,
        StatusCode::OK
    );

    // Logging in again on the same device id replaces that device's token.
    let again = login("AGAIN", false).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(whoami(again.clone()).await, StatusCode::OK);
    login("AGAIN", false).await;
    assert_eq!(whoami(again).await, StatusCode::UNAUTHORIZED);

    // Deleting a device (here: logging out) kills its token; the others live.
    let (status, _) = roost
        .request(
            Method::POST,
            "/_matrix/client/v3/logout",
            Some(&first),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(whoami(first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        whoami(new["access_token"].as_str().unwrap().to_owned()).await,
        StatusCode::OK
    );
}
