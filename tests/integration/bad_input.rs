//! Bad input gets the spec's error, never a 500, and changes nothing stored.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Server, assert_error, unique};

#[tokio::test]
async fn bodies_over_the_limit_are_413_too_large() {
    let server = Server::start_with(&[("ROOST_LIMITS__MAX_REQUEST_BYTES", "4096")]).await;
    let (user_id, token, _) = server.register(&unique("big"), "pw").await;
    let huge = json!({ "displayname": "x".repeat(10_000) });
    let path = format!("/_matrix/client/v3/profile/{user_id}/displayname");
    let res = server
        .request(Method::PUT, &path, Some(&token), Some(huge))
        .await;
    assert_error(&res, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let res = server
        .raw(
            Method::POST,
            "/_matrix/client/v3/login",
            None,
            vec![b'{'; 100_000],
        )
        .await;
    assert_error(&res, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
}

#[tokio::test]
async fn unknown_paths_methods_and_tokens() {
    let server = Server::start().await;
    let res = server
        .request(
            Method::GET,
            "/_matrix/client/v3/no/such/endpoint",
            None,
            None,
        )
        .await;
    assert_error(&res, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    let res = server
        .request(Method::DELETE, "/_matrix/client/v3/login", None, None)
        .await;
    assert_error(&res, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    let res = server
        .request(Method::GET, "/_matrix/client/v3/account/whoami", None, None)
        .await;
    assert_error(&res, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let res = server
        .request(
            Method::GET,
            "/_matrix/client/v3/account/whoami",
            Some("syt_bogus"),
            None,
        )
        .await;
    assert_error(&res, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    // The query-string token was removed in v1.16 and must not authenticate.
    let (_, token, _) = server.register(&unique("q"), "pw").await;
    let res = server
        .request(
            Method::GET,
            &format!("/_matrix/client/v3/account/whoami?access_token={token}"),
            None,
            None,
        )
        .await;
    assert_error(&res, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn malformed_bodies_get_not_json_or_bad_json() {
    let server = Server::start().await;
    let res = server
        .raw(
            Method::POST,
            "/_matrix/client/v3/login",
            None,
            b"this is not json".to_vec(),
        )
        .await;
    assert_error(&res, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    let res = server
        .request(
            Method::POST,
            "/_matrix/client/v3/login",
            None,
            Some(json!({"type": "m.login.password", "password": 12})),
        )
        .await;
    assert_eq!(res.0, StatusCode::BAD_REQUEST, "{}", res.1);
    let res = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({"username": ["a"]})),
        )
        .await;
    assert_error(&res, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let res = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({"username": "UPPER"})),
        )
        .await;
    assert_error(&res, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    let long = "a".repeat(300);
    let res = server
        .request(
            Method::POST,
            "/_matrix/client/v3/register",
            None,
            Some(json!({"username": long})),
        )
        .await;
    assert_error(&res, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
}

/// Throw many kinds of junk at every endpoint: nothing may answer 5xx, every error is a
/// Matrix error, and the account's stored state is unchanged afterwards.
#[tokio::test]
async fn junk_never_yields_500_and_changes_nothing() {
    let server = Server::start().await;
    let (user_id, token, device_id) = server.register(&unique("junk"), "pw").await;
    let name_path = format!("/_matrix/client/v3/profile/{user_id}/displayname");
    server
        .request(
            Method::PUT,
            &name_path,
            Some(&token),
            Some(json!({"displayname": "Stable"})),
        )
        .await;

    let endpoints: Vec<(Method, String)> = vec![
        (Method::POST, "/_matrix/client/v3/register".into()),
        (Method::POST, "/_matrix/client/v3/login".into()),
        (Method::POST, "/_matrix/client/v3/refresh".into()),
        (Method::POST, "/_matrix/client/v3/account/password".into()),
        (Method::POST, "/_matrix/client/v3/account/deactivate".into()),
        (Method::POST, "/_matrix/client/v3/delete_devices".into()),
        (
            Method::PUT,
            format!("/_matrix/client/v3/devices/{device_id}"),
        ),
        (
            Method::DELETE,
            format!("/_matrix/client/v3/devices/{device_id}"),
        ),
        (Method::PUT, name_path.clone()),
        (
            Method::PUT,
            format!("/_matrix/client/v3/profile/{user_id}/avatar_url"),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/v3/user/{user_id}/account_data/m.x"),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/v3/user/{user_id}/rooms/!r:localhost/account_data/m.x"),
        ),
        (
            Method::POST,
            format!("/_matrix/client/v3/user/{user_id}/filter"),
        ),
        (Method::POST, "/_synapse/admin/v1/register".into()),
        (
            Method::POST,
            "/_synapse/admin/v1/registration_tokens/new".into(),
        ),
        (
            Method::GET,
            "/_matrix/client/v3/profile/not-a-user-id".into(),
        ),
        (
            Method::GET,
            "/_matrix/client/v3/user/@x:localhost/filter/%FF%FE".into(),
        ),
        (
            Method::PUT,
            "/_matrix/client/v3/user/not-a-user/rooms/not-a-room/account_data/t".into(),
        ),
    ];
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"garbage".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"{\"displayname\": 5, \"avatar_url\": {}, \"new_password\": [], \"devices\": 7}".to_vec(),
        b"{\"auth\": {\"type\": 9}}".to_vec(),
        b"{\"auth\": {\"type\": \"m.login.password\", \"session\": \"nope\"}}".to_vec(),
        "{\"unicode\": \"\u{202e}\u{0}\"}".as_bytes().to_vec(),
        vec![b'['; 5000],
        b"{\"a\":".to_vec(),
    ];
    for (method, path) in &endpoints {
        for body in &bodies {
            for auth in [None, Some(token.as_str())] {
                let (status, json) = server.raw(method.clone(), path, auth, body.clone()).await;
                assert!(
                    !status.is_server_error(),
                    "{method} {path} with {:?} → {status} {json}",
                    String::from_utf8_lossy(body)
                );
                // Every failure is a Matrix error, or a UIA challenge (401 with flows).
                let uia = status == StatusCode::UNAUTHORIZED && json["flows"].is_array();
                if !status.is_success() && !uia {
                    assert!(
                        json["errcode"].is_string(),
                        "{method} {path} → {status} without errcode: {json}"
                    );
                }
            }
        }
    }
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
        "junk must not log the user out: {who}"
    );
    let (_, profile) = server.request(Method::GET, &name_path, None, None).await;
    assert_eq!(profile["displayname"], "Stable");
}
