//! The discord server side of the gateway: heartbeats and their acks, identify, resume
//! with replay or an invalid session.

use std::time::Instant;

use super::sessions::ResumeRefused;
use super::{CloseWhy, Credentials, Gateway, GatewayEvent, INVALID_SESSION_WAIT, PeerId};
use tether_core::ConnId;
use tether_core::Utf8Bytes;
use tether_core::protocol::discord::wire::{self, ClientFrame};

impl Gateway {
    pub(super) fn discord_frame(
        &mut self,
        conn: ConnId,
        ready: Option<PeerId>,
        text: Utf8Bytes,
        now: Instant,
    ) {
        let frame = match wire::read_client(text.as_str()) {
            Ok(frame) => frame,
            Err(reason) => return self.bad_frame(conn, reason),
        };
        match (frame, ready) {
            (ClientFrame::Heartbeat { .. }, ready) => {
                if self.ack_allowed(conn) {
                    self.write(conn, wire::heartbeat_ack());
                }
                if ready.is_some() {
                    self.registry.beat(conn, now);
                }
            }
            (ClientFrame::Identify { token, d }, None) => {
                let credentials = Credentials {
                    conn,
                    token: token.as_deref(),
                    payload: d.get(),
                };
                match self.authenticate(&credentials) {
                    Ok(peer) => self.identified(conn, peer, now),
                    Err(_) => self.rejected(conn),
                }
            }
            (
                ClientFrame::Resume {
                    token,
                    session_id,
                    seq,
                },
                None,
            ) => {
                let credentials = Credentials {
                    conn,
                    token: token.as_deref(),
                    payload: "",
                };
                match self.authenticate(&credentials) {
                    Ok(peer) => self.resume(conn, peer, &session_id, seq, now),
                    Err(_) => self.rejected(conn),
                }
            }
            (ClientFrame::Identify { .. } | ClientFrame::Resume { .. }, Some(_)) => {
                self.close(conn, CloseWhy::AlreadyAuthenticated);
            }
            (ClientFrame::Application(_), Some(peer)) => {
                self.events
                    .push_back(GatewayEvent::Message { peer, conn, text });
            }
            (ClientFrame::Application(_), None) => self.close(conn, CloseWhy::NotAuthenticated),
            (ClientFrame::Unknown(op), _) => {
                self.stats.bad_frames += 1;
                self.events.push_back(GatewayEvent::BadFrame {
                    conn,
                    reason: format!("unknown opcode {op}"),
                });
                self.close(conn, CloseWhy::UnknownOpcode);
            }
        }
    }

    fn identified(&mut self, conn: ConnId, peer: PeerId, now: Instant) {
        let id = loop {
            let id = format!("{:032x}", self.rng.u128(..));
            if !self.sessions.contains(&id) {
                break id;
            }
        };
        let data = ready_data(&id, self.config.resume_url.as_deref());
        self.sessions.start(id, peer.clone(), conn);
        self.ready(conn, peer.clone(), now);
        if let Some(pushed) = self.sessions.push(&peer, "READY", &data) {
            self.write(conn, pushed.frame);
        }
    }

    fn resume(
        &mut self,
        conn: ConnId,
        peer: PeerId,
        session_id: &str,
        seq: Option<u64>,
        now: Instant,
    ) {
        let refused_on_demand = self.faults.invalid_session_rate > 0.0
            && self.rng.f64() < self.faults.invalid_session_rate;
        let resumed = if refused_on_demand {
            Err(ResumeRefused::Unknown)
        } else {
            self.sessions.resume(session_id, &peer, seq, conn)
        };
        match resumed {
            Ok((_, missed)) => {
                self.ready(conn, peer.clone(), now);
                let replayed = missed.len();
                for frame in missed {
                    self.write(conn, frame);
                }
                if let Some(pushed) = self.sessions.push(&peer, "RESUMED", "null") {
                    self.write(conn, pushed.frame);
                }
                self.stats.resumes += 1;
                self.stats.replayed += replayed as u64;
                self.events.push_back(GatewayEvent::Resumed {
                    peer,
                    conn,
                    replayed,
                });
            }
            Err(ResumeRefused::Unknown | ResumeRefused::OtherPeer | ResumeRefused::OutOfReach) => {
                // The client identifies afresh, on this socket or the next, after waiting
                // up to 5 s as the protocol asks: its handshake time starts again after it.
                self.stats.invalid_sessions += 1;
                self.write(conn, wire::invalid_session(false));
                self.restart_handshake_clock(conn, tether_core::after(now, INVALID_SESSION_WAIT));
            }
        }
    }
}

/// READY's data: the session and where to resume it.
fn ready_data(session_id: &str, resume_url: Option<&str>) -> String {
    let mut d = serde_json::json!({ "v": 10, "session_id": session_id });
    if let Some(url) = resume_url {
        d["resume_gateway_url"] = url.into();
    }
    d.to_string()
}
