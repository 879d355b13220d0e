//! Durability: what a client got a 200 for survives a crash and a restart.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Server, unique};

#[tokio::test]
async fn accounts_tokens_and_profile_survive_a_crash() {
    let server = Server::start().await;
    let name = unique("crash");
    let (user_id, token, device_id) = server.register(&name, "pw-before-crash").await;
    let path = format!("/_matrix/client/v3/profile/{user_id}/displayname");
    let (status, _) = server
        .request(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"displayname": "Before"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let data_path = format!("/_matrix/client/v3/user/{user_id}/account_data/com.example.x");
    let (status, _) = server
        .request(Method::PUT, &data_path, Some(&token), Some(json!({"k": 1})))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (dir, tmp) = server.crash().await;
    let server = Server::start_in(&dir, &[]).await;

    let (status, who) = server
        .request(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "token still valid after restart: {who}"
    );
    assert_eq!(who["user_id"], user_id.as_str());
    assert_eq!(who["device_id"], device_id.as_str());
    let (status, login) = server.login(&name, "pw-before-crash").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let (_, profile) = server.request(Method::GET, &path, None, None).await;
    assert_eq!(profile["displayname"], "Before");
    let (_, data) = server
        .request(Method::GET, &data_path, Some(&token), None)
        .await;
    assert_eq!(data, json!({"k": 1}));
    drop(server);
    drop(tmp);
}

#[tokio::test]
async fn tokens_are_never_stored_in_clear() {
    let server = Server::start().await;
    let (_, token, _) = server.register(&unique("clear"), "secret-password-1").await;
    let (dir, tmp) = server.crash().await;
    let needle = token.as_bytes();
    let mut checked = 0;
    for entry in walk(&dir) {
        let bytes = std::fs::read(&entry).unwrap();
        checked += 1;
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "access token found in clear in {}",
            entry.display()
        );
        assert!(
            !bytes.windows(17).any(|w| w == b"secret-password-1"),
            "password found in clear in {}",
            entry.display()
        );
    }
    assert!(checked > 0, "the data dir holds files");
    drop(tmp);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
