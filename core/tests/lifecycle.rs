//! Lifecycle behaviour beyond the catalogue: the transition stream, status, probes, time,
//! and the profile signals a session protocol can raise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::hello_profile::HelloProfile;
use support::*;
use tether_core::{
    CallError, CloseCause, Event, Frame, Phase, ProtocolError, Reason, Status, StopReason,
    Transition,
};

type E = Event<Frame>;

fn transitions(out: &[Out<Frame>]) -> Vec<(Phase, Phase, Reason)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Ev(E::Transition(Transition {
                from, to, reason, ..
            })) => Some((*from, *to, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn every_transition_is_an_event_with_its_reason() {
    let mut sim = Sim::hello();
    sim.connect().unwrap();
    sim.opened(1);
    sim.text(1, "hello");
    sim.text(1, "ready");
    sim.reconnect(RESUME).unwrap();
    sim.elapse(secs(2));
    sim.elapse(ms(500));
    use Phase::*;
    assert_eq!(
        transitions(&sim.take_all()),
        [
            (Idle, Connecting, Reason::UserConnect),
            (Connecting, Handshaking, Reason::Opened),
            (Handshaking, Handshaking, Reason::HandshakeSent),
            (Handshaking, Ready, Reason::Ready { resumed: false }),
            (Ready, Draining, Reason::UserReconnect(RESUME)),
            (Draining, Draining, Reason::DrainTimeout),
            (Draining, Connecting, Reason::Abandoned),
        ]
    );
}

#[test]
fn transitions_carry_conn_attempt_and_next_delay() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.open_failed(
        1,
        tether_core::OpenError::new(tether_core::OpenErrorKind::Io, ""),
    );
    let last = sim
        .take_all()
        .into_iter()
        .filter_map(|o| match o {
            Out::Ev(E::Transition(t)) => Some(t),
            _ => None,
        })
        .last()
        .unwrap();
    assert_eq!(last.to, Phase::Backoff);
    assert_eq!(last.conn, None);
    assert_eq!(last.attempt, 2);
    assert_eq!(last.next_delay, Some(secs(1)));
}

#[test]
fn status_tells_phase_conn_reason_and_never_latches() {
    let mut sim = Sim::plain();
    assert_eq!(
        sim.client.state(),
        Status {
            phase: Phase::Idle,
            conn: None,
            reason: Reason::Created,
            attempt: 0
        }
    );
    sim.connect().unwrap();
    sim.opened(1);
    assert_eq!(sim.client.state().phase, Phase::Ready);
    assert_eq!(sim.client.state().conn, Some(c(1)));
    sim.elapse(secs(11));
    sim.closed(1, CloseCause::Dropped);
    let status = sim.client.state();
    assert_eq!(status.phase, Phase::Connecting);
    assert_eq!(status.conn, Some(c(2)));
    assert_eq!(status.reason, Reason::Closed(CloseCause::Dropped));
    sim.opened(2);
    assert_eq!(sim.client.state().reason, Reason::Ready { resumed: false });
    sim.shutdown();
    sim.closed(2, CloseCause::Dropped);
    assert_eq!(sim.client.state().phase, Phase::Stopped);
    assert_eq!(sim.client.stop_reason(), Some(&StopReason::Shutdown));
}

#[test]
fn stats_only_grow() {
    let mut sim = Sim::beating();
    let mut last = sim.client.stats();
    let check = |sim: &Sim<tether_core::Plain>, last: &mut tether_core::Stats| {
        let now = sim.client.stats();
        let pairs = [
            (last.opens, now.opens),
            (last.opened, now.opened),
            (last.ready, now.ready),
            (last.reconnects, now.reconnects),
            (last.stale_inputs, now.stale_inputs),
            (last.zombies, now.zombies),
            (last.heartbeats, now.heartbeats),
            (last.frames_received, now.frames_received),
        ];
        assert!(pairs.iter().all(|(a, b)| a <= b), "{last:?} -> {now:?}");
        *last = now;
    };
    sim.connect().unwrap();
    check(&sim, &mut last);
    sim.opened(1);
    check(&sim, &mut last);
    sim.text(1, "x");
    sim.text(3, "stale");
    check(&sim, &mut last);
    for _ in 0..6 {
        sim.elapse(secs(5));
        check(&sim, &mut last);
    }
    assert_eq!((last.frames_received, last.stale_inputs), (1, 1));
    assert!(
        last.zombies == 1 && last.heartbeats >= 1 && last.opens > 1,
        "{last:?}"
    );
}

#[test]
fn probe_beats_now_and_judges_within_one_ack_timeout() {
    let mut sim = Sim::beating();
    assert_eq!(sim.probe(), Err(CallError::NotConnected));
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    sim.probe().unwrap();
    assert_eq!(sim.take(), [send(1, ping(1))]);
    sim.elapse(ms(30));
    sim.frame(1, pong(1));
    assert_eq!(sim.client.stats().last_heartbeat_rtt, Some(ms(30)));

    // A probe nobody answers ends the connection after one ack timeout, no later, even
    // though a regular beat falls due meanwhile.
    sim.probe().unwrap();
    sim.take();
    sim.elapse(secs(10));
    let out = sim.take();
    assert!(out.contains(&abort(1)), "{out:?}");
    assert!(out.contains(&ev(E::Disconnected {
        conn: c(1),
        reason: Reason::ProbeFailed
    })));
}

#[test]
fn probe_without_heartbeat_is_refused() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.opened(1);
    assert_eq!(sim.probe(), Err(CallError::NoHeartbeat));
    sim.shutdown();
    assert_eq!(sim.probe(), Err(CallError::Stopped));
}

#[test]
fn time_going_backwards_is_ignored() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.take();
    let connect_deadline = sim.client.poll_timeout().unwrap();
    // An input stamped in the past is taken as happening now: deadlines do not move back.
    sim.client.handle_input(
        tether_core::Input::Opened { conn: c(1) },
        sim.t0 - Duration::from_secs(100),
    );
    assert_eq!(sim.client.state().phase, Phase::Ready);
    sim.client.handle_timeout(sim.t0 - Duration::from_secs(50));
    assert!(
        sim.client
            .poll_timeout()
            .is_none_or(|t| t >= connect_deadline - secs(5))
    );
    assert_eq!(sim.client.state().phase, Phase::Ready);
}

#[test]
fn protocol_errors_are_counted_and_reported() {
    let mut sim = Sim::hello();
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    sim.text(1, "bad");
    sim.text(1, "hello:notanumber");
    assert_eq!(
        sim.take(),
        [
            ev(E::ProtocolError {
                conn: c(1),
                error: ProtocolError::new("not a frame of this protocol")
            }),
            ev(E::ProtocolError {
                conn: c(1),
                error: ProtocolError::new("bad hello")
            })
        ]
    );
    assert_eq!(sim.client.stats().protocol_errors, 2);
    assert_eq!(sim.client.state().phase, Phase::Handshaking);
}

#[test]
fn server_reconnect_request_resumes_at_once() {
    let mut sim = Sim::hello();
    sim.connect().unwrap();
    sim.opened(1);
    sim.text(1, "hello");
    sim.text(1, "ready");
    sim.elapse(secs(11));
    sim.take();
    sim.text(1, "reconnect");
    assert_eq!(
        sim.take(),
        [
            close(1, 4000, "resume"),
            ev(E::Disconnected {
                conn: c(1),
                reason: Reason::ServerReconnect
            })
        ]
    );
    sim.peer_closes(1, 4000);
    assert_eq!(
        sim.take(),
        [
            open(2),
            ev(E::Reconnecting {
                delay: Duration::ZERO,
                attempt: 1,
                resume: true,
                reason: Reason::ServerReconnect
            }),
            ev(E::Connecting {
                conn: c(2),
                attempt: 1
            })
        ]
    );
    sim.opened(2);
    sim.text(2, "hello");
    assert_eq!(sim.take(), [send_text(2, "resume")]);
}

#[test]
fn invalid_session_not_resumable_starts_fresh_after_a_wait() {
    let mut sim = Sim::ready_hello();
    sim.text(1, "invalid:false");
    assert_eq!(sim.client.profile().session, None);
    assert_eq!(sim.take()[0], close(1, 1000, "bye"));
    sim.peer_closes(1, 1000);
    let out = sim.take();
    let Some(Out::Ev(E::Reconnecting { delay, resume, .. })) = out.first() else {
        panic!("{out:?}");
    };
    assert!((secs(1)..=secs(5)).contains(delay), "{delay:?}");
    assert!(!resume);
}

#[test]
fn close_code_classified_fresh_clears_the_session() {
    let mut sim = Sim::hello();
    sim.connect().unwrap();
    sim.opened(1);
    sim.text(1, "hello");
    sim.text(1, "ready");
    sim.elapse(secs(11));
    sim.take();
    sim.peer_closes(1, 4007);
    assert_eq!(sim.client.profile().session, None);
    sim.opened(2);
    sim.text(2, "hello");
    assert_eq!(sim.take().last(), Some(&send_text(2, "identify")));
}

#[test]
fn duplicate_ready_and_hello_change_nothing() {
    let mut sim = Sim::ready_hello();
    sim.text(1, "hello");
    sim.text(1, "resumed");
    sim.assert_quiet();
    assert_eq!(sim.client.stats().ready, 1);
}

#[test]
fn unexpected_acks_are_counted() {
    let mut sim = Sim::hello();
    sim.connect().unwrap();
    sim.opened(1);
    sim.text(1, "hello:10000");
    sim.text(1, "ack");
    assert_eq!(sim.client.stats().unexpected_acks, 1);
}

#[test]
fn a_tiny_hello_interval_cannot_busy_loop() {
    let config = test_config().build().unwrap();
    let mut sim = Sim::new(config, HelloProfile::default());
    sim.connect().unwrap();
    sim.opened(1);
    sim.text(1, "hello:0");
    sim.text(1, "ready");
    sim.take();
    // With a zero interval from the server, beats are still at least 1 ms apart.
    let mut beats = 0;
    for _ in 0..20 {
        sim.elapse(ms(1));
        beats += sim
            .take()
            .iter()
            .filter(|o| **o == send_text(1, "beat"))
            .count();
        sim.text(1, "ack");
    }
    assert!(beats <= 21, "{beats} beats in 20 ms");
}

#[test]
fn repeated_server_reconnect_requests_back_off() {
    let mut sim = Sim::hello();
    sim.connect().unwrap();
    for (conn, delay, attempt) in [(1, 1, 2), (2, 2, 3), (3, 4, 4)] {
        sim.opened(conn);
        sim.text(conn, "hello");
        sim.text(conn, "resumed");
        sim.text(conn, "reconnect");
        sim.peer_closes(conn, 4000);
        let out = sim.take();
        let reconnecting = out
            .iter()
            .find(|o| matches!(o, Out::Ev(E::Reconnecting { .. })))
            .unwrap();
        assert_eq!(
            *reconnecting,
            ev(E::Reconnecting {
                delay: secs(delay),
                attempt,
                resume: false,
                reason: Reason::ServerReconnect
            })
        );
        sim.elapse(secs(delay));
    }
}
