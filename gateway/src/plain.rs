//! The plain server side of the gateway: a bare WebSocket, ready once upgraded, kept alive
//! by pings, its messages handed to the application as they are.

use std::time::Instant;

use super::{CloseWhy, Credentials, Gateway, GatewayEvent, PeerId};
use tether_core::ConnId;
use tether_core::Frame;

impl Gateway {
    /// A plain socket has no handshake: it is ready as the authenticator names it.
    pub(super) fn plain_accepted(&mut self, conn: ConnId, now: Instant) {
        let credentials = Credentials {
            conn,
            token: None,
            payload: "",
        };
        match self.authenticate(&credentials) {
            Ok(peer) => self.ready(conn, peer, now),
            Err(_) => self.rejected(conn),
        }
    }

    pub(super) fn plain_frame(
        &mut self,
        conn: ConnId,
        ready: Option<PeerId>,
        frame: Frame,
        now: Instant,
    ) {
        let Some(peer) = ready else {
            self.close(conn, CloseWhy::NotAuthenticated);
            return;
        };
        // Any frame shows the client alive, its pongs included.
        self.registry.beat(conn, now);
        match frame {
            Frame::Text(text) => self
                .events
                .push_back(GatewayEvent::Message { peer, conn, text }),
            Frame::Binary(data) => self
                .events
                .push_back(GatewayEvent::Binary { peer, conn, data }),
            Frame::Ping(_) | Frame::Pong(_) => {}
        }
    }
}
