//! The rpc server side of the gateway: the optional challenge, `connect`, pings, requests
//! and events from clients, answers to invokes.

use std::time::Instant;

use serde_json::value::RawValue;

use super::wire::{self, RpcIn};
use super::{CloseWhy, Credentials, Gateway, GatewayEvent, PeerId, Rejection};
use crate::conn::ConnId;
use crate::event::RemoteError;
use crate::frame::Utf8Bytes;
use crate::registry::InvokeId;

impl Gateway {
    pub(super) fn rpc_frame(
        &mut self,
        conn: ConnId,
        ready: Option<PeerId>,
        text: Utf8Bytes,
        now: Instant,
    ) {
        let frame = match wire::read_rpc(text.as_str()) {
            Ok(frame) => frame,
            Err(reason) => return self.bad_frame(conn, reason),
        };
        if ready.is_some() {
            self.registry.beat(conn, now);
        }
        match (frame, ready) {
            (RpcIn::Connect { params, id }, None) => {
                let id = id.get().to_owned();
                self.connect(conn, &id, params, now);
            }
            (RpcIn::Connect { id, .. }, Some(_)) => {
                let reply = wire::rpc_error(id.get(), "ALREADY_CONNECTED", "already connected");
                self.write(conn, reply);
            }
            (RpcIn::Ping { id }, _) => {
                if self.ack_allowed(conn) {
                    let reply = wire::rpc_ok(id.get(), "null");
                    self.write(conn, reply);
                }
            }
            (RpcIn::Application, Some(peer)) => {
                self.events
                    .push_back(GatewayEvent::Message { peer, conn, text });
            }
            (RpcIn::Answer { invoke, answer }, Some(_)) => self.answer(conn, invoke, answer, &text),
            (RpcIn::Application | RpcIn::Answer { .. }, None) => {
                self.close(conn, CloseWhy::NotAuthenticated);
            }
        }
    }

    fn connect(&mut self, conn: ConnId, id: &str, params: Option<&RawValue>, now: Instant) {
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(borrow)]
            token: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            nonce: Option<std::borrow::Cow<'a, str>>,
        }
        let payload = params.map_or("null", RawValue::get);
        let fields = serde_json::from_str::<Params<'_>>(payload).ok();
        let expected = self.conns.get(&conn).and_then(|c| c.nonce.clone());
        let nonce = fields.as_ref().and_then(|f| f.nonce.as_deref());
        if expected.is_some() && expected.as_deref() != nonce {
            return self.rejected_rpc(
                conn,
                id,
                &Rejection::new("challenge nonce missing or wrong"),
            );
        }
        let credentials = Credentials {
            conn,
            token: fields.as_ref().and_then(|f| f.token.as_deref()),
            payload,
        };
        match self.authenticate(&credentials) {
            Ok(peer) => {
                let welcome = wire::rpc_welcome(self.config.heartbeat_interval);
                self.write(conn, wire::rpc_ok(id, &welcome));
                self.ready(conn, peer, now);
            }
            Err(rejection) => self.rejected_rpc(conn, id, &rejection),
        }
    }

    pub(super) fn answer(
        &mut self,
        conn: ConnId,
        invoke: Option<u64>,
        answer: Result<&str, RemoteError>,
        text: &Utf8Bytes,
    ) {
        let answer = answer.map(|payload| text.share(payload));
        // An id that is no number of ours can only be stray: the registry counts it.
        let id = InvokeId::from_wire(invoke.unwrap_or(0));
        self.registry.result(conn, id, answer);
    }
}
