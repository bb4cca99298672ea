//! The OpenClaw server side of the gateway: the challenge, `connect` answered with
//! `hello-ok`, requests and events from clients, invoke results from nodes.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::wire::{self, InvokePayload, OpenClawIn};
use super::{CloseWhy, Credentials, Gateway, GatewayEvent, PeerId, Rejection};
use crate::registry::InvokeId;
use tether_core::ConnId;
use tether_core::RemoteError;
use tether_core::Utf8Bytes;

/// The parts of `connect` the gateway reads; the rest stays in the payload for the
/// authenticator.
#[derive(Deserialize, Default)]
struct ConnectParams<'a> {
    #[serde(borrow, default)]
    auth: Option<Auth<'a>>,
    #[serde(borrow, default)]
    device: Option<Device<'a>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(default)]
    scopes: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Auth<'a> {
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    password: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Device<'a> {
    #[serde(borrow, default)]
    nonce: Option<Cow<'a, str>>,
}

impl Gateway {
    pub(super) fn openclaw_frame(
        &mut self,
        conn: ConnId,
        ready: Option<PeerId>,
        text: Utf8Bytes,
        now: Instant,
    ) {
        let frame = match wire::read_openclaw(text.as_str()) {
            Ok(frame) => frame,
            Err(reason) => return self.bad_frame(conn, reason),
        };
        if ready.is_some() {
            self.registry.beat(conn, now);
        }
        match (frame, ready) {
            (OpenClawIn::Connect { params, id }, None) => {
                let id = id.get().to_owned();
                self.connect(conn, &id, params, now);
            }
            (OpenClawIn::Connect { id, .. }, Some(_)) => {
                let reply = wire::res_error(id.get(), "INVALID_REQUEST", "already connected");
                self.write(conn, reply);
            }
            (OpenClawIn::Application, Some(peer)) => {
                self.events
                    .push_back(GatewayEvent::Message { peer, conn, text });
            }
            (OpenClawIn::InvokeResult { id, invoke, answer }, Some(_)) => {
                let receipt = wire::res_ok(id.get(), "{\"ok\":true}");
                self.answer(conn, invoke, answer, &text);
                self.write(conn, receipt);
            }
            (OpenClawIn::Application | OpenClawIn::InvokeResult { .. }, None) => {
                self.close(conn, CloseWhy::NotAuthenticated);
            }
        }
    }

    fn connect(&mut self, conn: ConnId, id: &str, params: Option<&RawValue>, now: Instant) {
        let payload = params.map_or("null", RawValue::get);
        let fields = serde_json::from_str::<ConnectParams<'_>>(payload).unwrap_or_default();
        let expected = self.conns.get(&conn).and_then(|c| c.nonce.clone());
        let nonce = fields.device.as_ref().and_then(|d| d.nonce.as_deref());
        if nonce.is_some() && expected.as_deref() != nonce {
            return self.rejected_openclaw(conn, id, &Rejection::new("device nonce mismatch"));
        }
        let auth = fields.auth.as_ref();
        let token = auth.and_then(|a| {
            a.token
                .as_deref()
                .or(a.device_token.as_deref())
                .or(a.password.as_deref())
        });
        let credentials = Credentials {
            conn,
            token,
            payload,
        };
        match self.authenticate(&credentials) {
            Ok(peer) => {
                let scopes = fields
                    .scopes
                    .clone()
                    .unwrap_or_else(|| serde_json::json!([]));
                let grant = wire::Grant {
                    conn_id: &conn.to_string(),
                    role: fields.role.as_deref().unwrap_or("operator"),
                    scopes: &scopes,
                    tick: self.config.heartbeat_interval,
                    max_payload: self.config.max_message,
                };
                self.write(conn, wire::res_ok(id, &wire::hello_ok(&grant)));
                self.ready(conn, peer, now);
            }
            Err(rejection) => self.rejected_openclaw(conn, id, &rejection),
        }
    }

    pub(super) fn answer(
        &mut self,
        conn: ConnId,
        invoke: Option<u64>,
        answer: Result<InvokePayload<'_>, RemoteError>,
        text: &Utf8Bytes,
    ) {
        let answer = answer.map(|payload| match payload {
            InvokePayload::Raw(raw) => text.share(raw),
            InvokePayload::Text(json) => Utf8Bytes::from(json),
        });
        // An id that is no number of ours can only be stray: the registry counts it.
        let id = InvokeId::from_wire(invoke.unwrap_or(0));
        self.registry.result(conn, id, answer);
    }
}
