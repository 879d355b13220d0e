//! Device management (client-server API §Device management).

use axum::Router;
use axum::extract::State;
use ruma::MilliSecondsSinceUnixEpoch;
use ruma::api::client::device::{
    Device, delete_device, delete_devices, get_device, get_devices, update_device,
};

use crate::error::Error;
use crate::http::ruma::{Ruma, RumaResult};
use crate::http::ruma_route;
use crate::services::AppState;
use crate::users::sessions;
use crate::users::uiaa::{PASSWORD, Purpose};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = ruma_route::<get_devices::v3::Request, _, _>(router, list);
    let router = ruma_route::<get_device::v3::Request, _, _>(router, get);
    let router = ruma_route::<update_device::v3::Request, _, _>(router, update);
    let router = ruma_route::<delete_device::v3::Request, _, _>(router, delete);
    ruma_route::<delete_devices::v3::Request, _, _>(router, delete_many)
}

fn to_ruma(d: sessions::Device) -> Device {
    let mut device = Device::new(d.device_id);
    device.display_name = d.record.display_name;
    device.last_seen_ip = d.record.last_seen_ip;
    device.last_seen_ts = d
        .record
        .last_seen_ms
        .and_then(|ms| Some(MilliSecondsSinceUnixEpoch(ruma::UInt::new(ms)?)));
    device
}

async fn list(
    State(s): State<AppState>,
    req: Ruma<get_devices::v3::Request>,
) -> RumaResult<get_devices::v3::Response> {
    let devices = s
        .sessions
        .list_devices(&req.sender()?.user_id)?
        .into_iter()
        .map(to_ruma)
        .collect();
    Ok(get_devices::v3::Response::new(devices).into())
}

async fn get(
    State(s): State<AppState>,
    req: Ruma<get_device::v3::Request>,
) -> RumaResult<get_device::v3::Response> {
    let device = s
        .sessions
        .get_device(&req.sender()?.user_id, req.device_id.as_str())?
        .ok_or_else(|| Error::not_found("Unknown device"))?;
    Ok(get_device::v3::Response::new(to_ruma(device)).into())
}

async fn update(
    State(s): State<AppState>,
    req: Ruma<update_device::v3::Request>,
) -> RumaResult<update_device::v3::Response> {
    let me = req.sender()?.clone();
    let req = req.body;
    if s.sessions
        .get_device(&me.user_id, req.device_id.as_str())?
        .is_none()
    {
        return Err(Error::not_found("Unknown device"));
    }
    if let Some(name) = req.display_name {
        s.sessions
            .set_display_name(&me.user_id, req.device_id.as_str(), Some(name))?;
    }
    Ok(update_device::v3::Response::new().into())
}

async fn delete(
    State(s): State<AppState>,
    req: Ruma<delete_device::v3::Request>,
) -> RumaResult<delete_device::v3::Response> {
    let me = req.sender()?.clone();
    // Deleting a device that is already gone succeeds (idempotent; the spec lists no 404).
    s.uiaa
        .authenticate(
            req.auth.as_ref(),
            &[&[PASSWORD]],
            Purpose::DeleteDevices,
            Some(&me.user_id),
        )
        .await?;
    s.sessions
        .delete_devices(&me.user_id, &[req.device_id.to_string()])?;
    Ok(delete_device::v3::Response::new().into())
}

async fn delete_many(
    State(s): State<AppState>,
    req: Ruma<delete_devices::v3::Request>,
) -> RumaResult<delete_devices::v3::Response> {
    let me = req.sender()?.clone();
    s.uiaa
        .authenticate(
            req.auth.as_ref(),
            &[&[PASSWORD]],
            Purpose::DeleteDevices,
            Some(&me.user_id),
        )
        .await?;
    let ids: Vec<String> = req.devices.iter().map(|d| d.to_string()).collect();
    s.sessions.delete_devices(&me.user_id, &ids)?;
    Ok(delete_devices::v3::Response::new().into())
}
