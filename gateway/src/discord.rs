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
            (ClientFrame::Heartbeat { .. }, _) => {
                if self.ack_allowed(conn) {
                    self.write(conn, wire::heartbeat_ack());
                }
                // A sign of life of a watched connection, ready or back in its handshake
                // after an invalid session (a connection not yet ready is not watched).
                self.registry.beat(conn, now);
            }
            (ClientFrame::Identify { token, d }, None) => {
                let credentials = Credentials {
                    conn,
                    token: token.as_deref(),
                    payload: d.get(),
                };
                let Ok(shard) = read_shard(d) else {
                    return self.close(conn, CloseWhy::InvalidShard);
                };
                match self.authenticate(&credentials) {
                    Ok(peer) => match self.may_start(&peer, shard, now) {
                        Ok(()) => self.identified(conn, peer, shard, now),
                        Err(Limited::TooSoon) => {
                            // As Discord: an invalid session; the client waits and identifies again.
                            self.stats.identifies_limited += 1;
                            self.write(conn, wire::invalid_session(false));
                            self.restart_handshake_clock(
                                conn,
                                tether_core::after(now, INVALID_SESSION_WAIT),
                            );
                        }
                        Err(Limited::Exhausted) => {
                            self.stats.identifies_limited += 1;
                            self.close(conn, CloseWhy::SessionStartLimit);
                        }
                    },
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

    /// Tells `peer`'s client its session is invalid (op 9): `resumable`, it stays resumable
    /// (its dispatches wait for the resume); not, it is gone. Either way the connection is
    /// back in its handshake: its client resumes or identifies on it, or on a new one, within
    /// the handshake timeout (counted from the longest wait the protocol allows).
    pub fn invalidate_session(
        &mut self,
        peer: &str,
        resumable: bool,
        now: Instant,
    ) -> Result<ConnId, super::GatewayError> {
        let conn = self
            .ready_conn(peer)
            .ok_or(super::GatewayError::NotConnected)?;
        let peer = PeerId::from(peer);
        self.write(conn, wire::invalid_session(resumable));
        if resumable {
            let expires = tether_core::after(now, self.config.resume_window);
            self.sessions.detach(&peer, conn, expires);
        } else {
            self.sessions.end(&peer, conn);
        }
        self.back_to_handshake(conn, now);
        Ok(conn)
    }

    /// Whether `owner` may start a session for `shard` now, under the identify limit; a
    /// start is counted when it may.
    fn may_start(
        &mut self,
        owner: &PeerId,
        shard: Option<[u32; 2]>,
        now: Instant,
    ) -> Result<(), Limited> {
        let Some(limit) = self.config.identify_limit else {
            return Ok(());
        };
        let id = shard.map_or(0, |[id, _]| id);
        self.starts.admit(owner, id, limit, now)
    }

    /// A fresh session for `owner`'s shard: kept under the owner and the shard (the peer
    /// `owner/shard-I-of-N` when the bot runs more than one), so the shards of one bot are
    /// sessions side by side, never replacing each other.
    fn identified(&mut self, conn: ConnId, owner: PeerId, shard: Option<[u32; 2]>, now: Instant) {
        let id = loop {
            let id = format!("{:032x}", self.rng.u128(..));
            if !self.sessions.contains(&id) {
                break id;
            }
        };
        // One shard of one is the bot unsharded: the same session key.
        let peer: PeerId = match shard {
            Some([shard, count]) if count > 1 => format!("{owner}/shard-{shard}-of-{count}").into(),
            _ => owner.clone(),
        };
        let ready = Ready {
            session_id: &id,
            owner: &owner,
            shard,
            resume_url: self.config.resume_url.as_deref(),
            guilds: &self.config.guilds,
        };
        let data = ready.data();
        self.sessions.start(id, owner, peer.clone(), conn);
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
            Ok((peer, missed)) => {
                self.ready(conn, peer.clone(), now);
                let replayed = missed.len();
                for frame in missed {
                    self.write(conn, frame);
                }
                // An object, as Discord sends it (clients read it as one).
                if let Some(pushed) = self.sessions.push(&peer, "RESUMED", "{}") {
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
            Err(refused) => {
                let reason = match refused {
                    _ if refused_on_demand => "refused on demand (a fault)",
                    ResumeRefused::Unknown => "no such session",
                    ResumeRefused::OtherPeer => "the session belongs to other credentials",
                    ResumeRefused::OutOfReach => "the client is behind what the replay keeps",
                };
                self.events
                    .push_back(GatewayEvent::ResumeRefused { conn, reason });
                // The client identifies afresh, on this socket or the next, after waiting
                // up to 5 s as the protocol asks: its handshake time starts again after it.
                self.stats.invalid_sessions += 1;
                self.write(conn, wire::invalid_session(false));
                self.restart_handshake_clock(conn, tether_core::after(now, INVALID_SESSION_WAIT));
            }
        }
    }
}

/// An identify's `shard`: absent, or `[id, count]` with `id` below `count`.
fn read_shard(d: &serde_json::value::RawValue) -> Result<Option<[u32; 2]>, ()> {
    #[derive(serde::Deserialize)]
    struct Shard {
        #[serde(default)]
        shard: Option<[u32; 2]>,
    }
    match serde_json::from_str::<Shard>(d.get()) {
        Ok(Shard { shard: None }) => Ok(None),
        Ok(Shard {
            shard: Some([id, count]),
        }) if id < count => Ok(Some([id, count])),
        _ => Err(()),
    }
}

/// READY as Discord sends it, with what a gateway of its own can say: the bot's user and
/// application (ids derived from its credentials' peer, stable across sessions), its
/// guilds as unavailable stubs, the shard echoed, and where to resume.
struct Ready<'a> {
    session_id: &'a str,
    owner: &'a str,
    shard: Option<[u32; 2]>,
    resume_url: Option<&'a str>,
    guilds: &'a [u64],
}

impl Ready<'_> {
    fn data(&self) -> String {
        let id = snowflake(self.owner).to_string();
        let guilds: Vec<_> = self
            .guilds
            .iter()
            .map(|id| serde_json::json!({ "id": id.to_string(), "unavailable": true }))
            .collect();
        let mut d = serde_json::json!({
            "v": 10,
            "user": {
                "id": id,
                "username": self.owner,
                "discriminator": "0",
                "global_name": null,
                "avatar": null,
                "bot": true,
                "flags": 0,
                "mfa_enabled": false,
                "verified": true,
            },
            "guilds": guilds,
            "session_id": self.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": { "id": id, "flags": 0 },
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "_trace": ["tether-gateway"],
        });
        if let Some(shard) = self.shard {
            d["shard"] = serde_json::json!(shard);
        }
        d.to_string()
    }
}

/// A Discord-shaped id (a positive 63-bit number) for `name`, the same every time.
fn snowflake(name: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(digest.as_ref().get(..8).unwrap_or(&[1; 8]));
    (u64::from_be_bytes(bytes) >> 1).max(1)
}

/// Why a session may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limited {
    /// Its bucket identified less than the spacing ago.
    TooSoon,
    /// The window's budget is spent.
    Exhausted,
}

/// Session starts per bot: when each bucket last identified, and the starts of the current
/// window. Kept only for bots that identified within the last spacing or window: an entry
/// older than both is forgotten when the bot comes again, so the table holds one entry per
/// bot and bucket seen within a window.
#[derive(Debug, Default)]
pub(super) struct Starts {
    buckets: std::collections::HashMap<(PeerId, u32), Instant>,
    windows: std::collections::HashMap<PeerId, (Instant, u32)>,
}

impl Starts {
    fn admit(
        &mut self,
        owner: &PeerId,
        shard: u32,
        limit: crate::IdentifyLimit,
        now: Instant,
    ) -> Result<(), Limited> {
        let bucket = shard % u32::from(limit.max_concurrency.max(1));
        if let Some(last) = self.buckets.get(&(owner.clone(), bucket)) {
            if now < tether_core::after(*last, limit.spacing) {
                return Err(Limited::TooSoon);
            }
        }
        self.windows
            .retain(|_, (start, _)| now < tether_core::after(*start, limit.window));
        let window = self.windows.entry(owner.clone()).or_insert((now, 0));
        if window.1 >= limit.per_window {
            return Err(Limited::Exhausted);
        }
        window.1 += 1;
        // Buckets whose spacing has passed say nothing more: forgotten as they go by.
        self.buckets
            .retain(|_, last| now < tether_core::after(*last, limit.spacing));
        self.buckets.insert((owner.clone(), bucket), now);
        Ok(())
    }
}
