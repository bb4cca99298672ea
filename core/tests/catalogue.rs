//! The failure catalogue of DESIGN.md, one scenario per entry (F1 to F13), each asserting
//! the exact commands and events in the order the machine produced them. Within one step,
//! commands are drained before events, as the driving loop prescribes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::*;
use tether_core::{
    CallError, CloseCause, CloseFrame, Config, Event, Frame, OpenError, OpenErrorKind, Phase,
    Reason, ReturnReason, SendErrorKind, StopReason,
};

type E = Event<Frame>;

fn connecting(n: u64, attempt: u32) -> Out<Frame> {
    ev(E::Connecting {
        conn: c(n),
        attempt,
    })
}

fn ready(n: u64, resumed: bool) -> Out<Frame> {
    ev(E::Ready {
        conn: c(n),
        resumed,
    })
}

fn message(n: u64, text: &'static str) -> Out<Frame> {
    ev(E::Message {
        conn: c(n),
        message: Frame::text(text),
    })
}

fn disconnected(n: u64, reason: Reason) -> Out<Frame> {
    ev(E::Disconnected { conn: c(n), reason })
}

fn reconnecting(delay: Duration, attempt: u32, resume: bool, reason: Reason) -> Out<Frame> {
    ev(E::Reconnecting {
        delay,
        attempt,
        resume,
        reason,
    })
}

fn stopped(reason: StopReason) -> Out<Frame> {
    ev(E::Stopped { reason })
}

fn io_error() -> OpenError {
    OpenError::new(OpenErrorKind::Io, "connection refused")
}

fn close_cause(code: u16) -> CloseCause {
    CloseCause::Frame(CloseFrame::new(code, ""))
}

#[test]
fn f01_overlapping_connects() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    assert_eq!(sim.take(), [open(1), connecting(1, 1)]);

    // A second connect while the first is in flight wins; the first is given up.
    sim.connect().unwrap();
    assert_eq!(sim.take(), [abort(1), open(2), connecting(2, 1)]);

    // The older attempt opens anyway: it gets only Abort, and nothing it does reaches
    // the application or starts a reconnect.
    sim.opened(1);
    assert_eq!(sim.take(), [abort(1)]);
    sim.text(1, "from the old socket");
    sim.peer_closes(1, 1001);
    sim.assert_quiet();

    sim.opened(2);
    sim.text(2, "from the new socket");
    assert_eq!(
        sim.take(),
        [ready(2, false), message(2, "from the new socket")]
    );
    assert_eq!(sim.client.stats().stale_inputs, 3);
    assert_eq!(sim.client.stats().opens, 2);
}

#[test]
fn f01_superseded_attempt_failing_late_changes_nothing() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.connect().unwrap();
    sim.take();
    sim.open_failed(1, OpenError::new(OpenErrorKind::Aborted, ""));
    sim.assert_quiet();
    assert_eq!(sim.client.state().phase, Phase::Connecting);
    assert_eq!(sim.client.state().conn, Some(c(2)));
}

#[test]
fn f02_stale_inputs() {
    let mut sim = Sim::ready_plain();
    // Conn 1 goes away; conn 2 takes over.
    sim.peer_closes(1, 1001);
    sim.elapse(secs(1));
    sim.opened(2);
    sim.take();

    // Everything conn 1 still sends, and everything of ids never issued, is dropped.
    sim.text(1, "late frame");
    sim.frame(1, Frame::binary(&b"late"[..]));
    sim.peer_closes(1, 1000);
    sim.open_failed(1, io_error());
    sim.text(7, "future conn");
    sim.opened(9);
    sim.peer_closes(0, 1000);
    sim.assert_quiet();
    // A duplicate Opened of an issued, non-current socket is aborted, never used.
    sim.opened(1);
    assert_eq!(sim.take(), [abort(1)]);
    assert_eq!(sim.client.stats().stale_inputs, 8);

    // The current connection is untouched.
    assert_eq!(sim.client.state().phase, Phase::Ready);
    sim.text(2, "current");
    assert_eq!(sim.take(), [message(2, "current")]);
}

#[test]
fn f03_failed_connect_backoff() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.open_failed(1, io_error());
    let failed = Reason::OpenFailed(io_error());
    assert_eq!(
        sim.take(),
        [
            open(1),
            connecting(1, 1),
            reconnecting(secs(1), 2, false, failed.clone())
        ]
    );
    assert_eq!(sim.client.state().phase, Phase::Backoff);

    sim.elapse(ms(999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(sim.take(), [open(2), connecting(2, 2)]);

    sim.open_failed(2, io_error());
    assert_eq!(sim.take(), [reconnecting(secs(2), 3, false, failed)]);

    // The user connects during the backoff: it replaces the backoff at once...
    sim.elapse(ms(500));
    sim.connect().unwrap();
    assert_eq!(sim.take(), [open(3), connecting(3, 1)]);
    // ...and the old backoff deadline does nothing.
    sim.elapse(secs(2));
    sim.assert_quiet();
    // A late failure of an older attempt changes nothing.
    sim.open_failed(2, io_error());
    sim.assert_quiet();
    assert_eq!(sim.client.state().conn, Some(c(3)));

    sim.opened(3);
    assert_eq!(sim.take(), [ready(3, false)]);
}

#[test]
fn f03_reconnect_during_backoff_replaces_it() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.open_failed(1, io_error());
    sim.take();
    sim.reconnect(RESUME).unwrap();
    assert_eq!(sim.take(), [open(2), connecting(2, 1)]);
    sim.elapse(secs(3));
    sim.assert_quiet();
}

#[test]
fn f03_server_retry_hint_is_honoured() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    let busy =
        OpenError::new(OpenErrorKind::Http { status: 503 }, "busy").with_retry_after(secs(7));
    sim.open_failed(1, busy.clone());
    assert_eq!(
        sim.take()[2..],
        [reconnecting(secs(7), 2, false, Reason::OpenFailed(busy))]
    );
    sim.elapse(ms(6999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(sim.take(), [open(2), connecting(2, 2)]);
}

#[test]
fn f03_unauthorized_upgrade_stops_instead_of_looping() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    let denied = OpenError::new(OpenErrorKind::Http { status: 401 }, "bad token");
    sim.open_failed(1, denied.clone());
    assert_eq!(
        sim.take(),
        [
            open(1),
            connecting(1, 1),
            stopped(StopReason::Rejected(denied))
        ]
    );
    assert_eq!(sim.client.poll_timeout(), None);
}

#[test]
fn f03_gives_up_after_max_attempts() {
    let config = test_config().max_attempts(Some(3)).build().unwrap();
    let mut sim = Sim::new(config, plain_quiet());
    sim.connect().unwrap();
    sim.open_failed(1, io_error());
    sim.elapse(secs(1));
    sim.open_failed(2, io_error());
    sim.elapse(secs(2));
    sim.take();
    sim.open_failed(3, io_error());
    assert_eq!(sim.take(), [stopped(StopReason::GaveUp { attempts: 3 })]);
    assert_eq!(sim.client.state().reason, Reason::GaveUp);
}

#[test]
fn f04_current_close_reconnects_once() {
    let mut sim = Sim::ready_plain();
    sim.elapse(secs(20));
    sim.peer_closes(1, 1001);
    let closed = Reason::Closed(close_cause(1001));
    // Stable for longer than stable_after: a new streak, first retry at once (window 0).
    assert_eq!(
        sim.take(),
        [
            open(2),
            disconnected(1, closed.clone()),
            reconnecting(Duration::ZERO, 1, false, closed),
            connecting(2, 1)
        ]
    );
    // A second report of the same close, or an error after it, starts nothing.
    sim.peer_closes(1, 1001);
    sim.closed(
        1,
        CloseCause::Error {
            kind: tether_core::TransportErrorKind::Io,
            detail: "reset".into(),
        },
    );
    sim.assert_quiet();
    assert_eq!(sim.client.stats().opens, 2);
    assert_eq!(sim.client.stats().reconnects, 1);
}

#[test]
fn f04_unstable_ready_connection_counts_as_a_failure() {
    let mut sim = Sim::ready_plain();
    sim.elapse(secs(3));
    sim.peer_closes(1, 1011);
    let closed = Reason::Closed(close_cause(1011));
    assert_eq!(
        sim.take(),
        [
            disconnected(1, closed.clone()),
            reconnecting(secs(1), 2, false, closed)
        ]
    );
}

#[test]
fn f04_first_retry_is_jittered_within_the_window() {
    let mut delays = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let config = test_config()
            .seed(seed)
            .first_retry_window(secs(4))
            .build()
            .unwrap();
        let mut sim = Sim::new(config, plain_quiet());
        sim.connect().unwrap();
        sim.opened(1);
        sim.elapse(secs(30));
        sim.take();
        sim.peer_closes(1, 1012);
        let out = sim.take();
        let Some(Out::Ev(E::Reconnecting { delay, attempt, .. })) = out.get(1) else {
            panic!("expected Reconnecting, got {out:?}");
        };
        assert_eq!(*attempt, 1);
        assert!(*delay <= secs(4));
        delays.insert(*delay);
    }
    assert!(
        delays.len() >= 15,
        "a fleet must not return in one wave: {delays:?}"
    );
}

#[test]
fn f04_fatal_close_stops() {
    let mut sim = Sim::ready_hello();
    sim.peer_closes(1, 4004);
    let cause = close_cause(4004);
    assert_eq!(
        sim.take(),
        [
            ev(E::Disconnected {
                conn: c(1),
                reason: Reason::Closed(cause.clone())
            }),
            ev(E::Stopped {
                reason: StopReason::Fatal(cause)
            })
        ]
    );
}

#[test]
fn f05_shutdown() {
    let mut sim = Sim::ready_plain();
    sim.send(Frame::text("a")).unwrap();
    assert_eq!(sim.take(), [send_text(1, "a")]);

    sim.shutdown();
    assert_eq!(
        sim.take(),
        [
            close(1, 1000, "shutdown"),
            disconnected(1, Reason::UserShutdown)
        ]
    );
    // User calls are refused, the frame handed back.
    let refused = sim.send(Frame::text("b")).unwrap_err();
    assert_eq!(refused.kind, SendErrorKind::Stopped);
    assert_eq!(refused.into_frame(), Frame::text("b"));
    assert_eq!(sim.connect(), Err(CallError::Stopped));
    assert_eq!(sim.reconnect(FRESH), Err(CallError::Stopped));
    sim.shutdown();
    sim.assert_quiet();

    // The socket does not close in time: Abort, then abandoned after the grace.
    sim.elapse(secs(2));
    assert_eq!(sim.take(), [abort(1)]);
    sim.elapse(ms(500));
    assert_eq!(sim.take(), [stopped(StopReason::Shutdown)]);

    // After Stopped, inputs are ignored and nothing is ever emitted.
    sim.peer_closes(1, 1000);
    sim.opened(1);
    sim.opened(2);
    sim.elapse(secs(60));
    sim.shutdown();
    sim.assert_quiet();
    assert_eq!(sim.client.poll_timeout(), None);
    assert_eq!(sim.client.stats().opens, 1);
}

#[test]
fn f05_shutdown_completes_when_the_socket_closes() {
    let mut sim = Sim::ready_plain();
    sim.shutdown();
    sim.take();
    sim.peer_closes(1, 1000);
    assert_eq!(sim.take(), [stopped(StopReason::Shutdown)]);
}

#[test]
fn f05_shutdown_while_connecting_aborts_and_hands_back() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    let a = sim.send(Frame::text("a")).unwrap();
    sim.take();
    sim.shutdown();
    assert_eq!(
        sim.take(),
        [
            abort(1),
            ev(E::Returned {
                id: a,
                frame: Frame::text("a"),
                reason: ReturnReason::Stopped
            })
        ]
    );
    // The adapter confirms the abort; the open never happens.
    sim.open_failed(1, OpenError::new(OpenErrorKind::Aborted, ""));
    assert_eq!(sim.take(), [stopped(StopReason::Shutdown)]);
}

#[test]
fn f05_shutdown_from_idle_and_backoff_stops_at_once() {
    let mut sim = Sim::plain();
    sim.shutdown();
    assert_eq!(sim.take(), [stopped(StopReason::Shutdown)]);

    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.open_failed(1, io_error());
    sim.take();
    sim.shutdown();
    assert_eq!(sim.take(), [stopped(StopReason::Shutdown)]);
    sim.elapse(secs(10));
    sim.assert_quiet();
}

#[test]
fn f06_no_heartbeat_where_the_peer_does_not_support_it() {
    let mut profile = support::hello_profile::HelloProfile::default();
    profile.no_heartbeat = true;
    let mut sim = Sim::new(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    sim.text(1, "hello:1000");
    sim.text(1, "ready");
    sim.take();
    // The hello carried an interval, but the profile has no heartbeat the peer answers:
    // nothing is sent, and the peer is never judged a zombie for not answering.
    sim.elapse(secs(60));
    sim.assert_quiet();
    assert_eq!(sim.client.state().phase, Phase::Ready);
    assert_eq!(sim.client.stats().zombies, 0);
    assert_eq!(sim.probe(), Err(CallError::NoHeartbeat));
}

#[test]
fn f07_forced_fresh_reconnect() {
    let mut sim = Sim::ready_hello();
    assert!(sim.client.profile().session.is_some());

    sim.reconnect(FRESH).unwrap();
    assert_eq!(
        sim.take(),
        [
            close(1, 1000, "bye"),
            disconnected(1, Reason::UserReconnect(FRESH))
        ]
    );
    // The resume state is gone before the next handshake.
    assert_eq!(sim.client.profile().session, None);

    // The draining socket's frames and close reach nobody; the close ends the drain and
    // only then does the new Open come, exactly once.
    sim.text(1, "dispatch after close");
    sim.assert_quiet();
    sim.peer_closes(1, 1000);
    assert_eq!(
        sim.take(),
        [
            open(2),
            reconnecting(Duration::ZERO, 1, false, Reason::UserReconnect(FRESH)),
            connecting(2, 1)
        ]
    );
    sim.closed(1, CloseCause::Dropped);
    sim.assert_quiet();

    sim.opened(2);
    sim.text(2, "hello");
    assert_eq!(sim.take(), [send_text(2, "identify")]);
    sim.text(2, "ready");
    assert_eq!(sim.take(), [ready(2, false)]);
}

#[test]
fn f07_fresh_reconnect_waits_for_drain_timeout_and_abort() {
    let mut sim = Sim::ready_hello();
    sim.reconnect(FRESH).unwrap();
    sim.take();
    sim.elapse(secs(2));
    assert_eq!(sim.take(), [abort(1)]);
    // The adapter confirms the abort: the new Open follows at once.
    sim.closed(1, CloseCause::Aborted);
    assert_eq!(sim.take()[0], open(2));
}

#[test]
fn f08_drain_timeout_abandons() {
    let mut sim = Sim::ready_plain();
    sim.reconnect(RESUME).unwrap();
    assert_eq!(
        sim.take(),
        [
            close(1, 4000, "reconnecting"),
            disconnected(1, Reason::UserReconnect(RESUME))
        ]
    );
    sim.elapse(ms(1999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(sim.take(), [abort(1)]);
    assert_eq!(sim.client.state().reason, Reason::DrainTimeout);
    sim.elapse(ms(499));
    sim.assert_quiet();
    // The adapter never confirms: after the grace the machine moves on by itself.
    sim.elapse(ms(1));
    assert_eq!(
        sim.take(),
        [
            open(2),
            reconnecting(Duration::ZERO, 1, false, Reason::UserReconnect(RESUME)),
            connecting(2, 1)
        ]
    );
    assert_eq!(sim.client.stats().abandoned, 1);

    // Whatever the abandoned socket sends later is stale.
    sim.text(1, "zombie frame");
    sim.peer_closes(1, 1000);
    sim.assert_quiet();
    sim.opened(2);
    assert_eq!(sim.take(), [ready(2, false)]);
}

#[test]
fn f09_shutdown_during_drain() {
    let mut sim = Sim::ready_plain();
    sim.reconnect(RESUME).unwrap();
    sim.take();
    sim.shutdown();
    sim.assert_quiet();
    sim.peer_closes(1, 4000);
    assert_eq!(sim.take(), [stopped(StopReason::Shutdown)]);
    assert_eq!(sim.client.stats().opens, 1);
}

#[test]
fn f09_shutdown_during_drain_that_never_closes() {
    let mut sim = Sim::ready_plain();
    sim.reconnect(FRESH).unwrap();
    sim.shutdown();
    sim.take();
    sim.elapse(secs(2));
    assert_eq!(sim.take(), [abort(1)]);
    sim.elapse(ms(500));
    assert_eq!(sim.take(), [stopped(StopReason::Shutdown)]);
    assert_eq!(sim.client.stats().opens, 1);
}

#[test]
fn f10_reconnects_coalesce() {
    let mut sim = Sim::ready_hello();
    sim.reconnect(RESUME).unwrap();
    assert_eq!(
        sim.take(),
        [
            close(1, 4000, "resume"),
            disconnected(1, Reason::UserReconnect(RESUME))
        ]
    );
    // More requests merge into the one under way; fresh wins over resume.
    sim.reconnect(FRESH).unwrap();
    sim.reconnect(RESUME).unwrap();
    sim.assert_quiet();
    sim.peer_closes(1, 4000);
    assert_eq!(
        sim.take(),
        [
            open(2),
            reconnecting(Duration::ZERO, 1, false, Reason::UserReconnect(RESUME)),
            connecting(2, 1)
        ]
    );
    // While the new socket is pending, requests merge too: never two opens.
    sim.reconnect(RESUME).unwrap();
    sim.reconnect(FRESH).unwrap();
    sim.assert_quiet();
    sim.opened(2);
    sim.text(2, "hello");
    assert_eq!(sim.take(), [send_text(2, "identify")]);
    // A fresh request during a fresh handshake is already served.
    sim.reconnect(FRESH).unwrap();
    sim.assert_quiet();
    assert_eq!(sim.client.stats().opens, 2);
}

#[test]
fn f10_fresh_request_during_a_resume_handshake_replaces_it() {
    let mut sim = Sim::ready_hello();
    sim.peer_closes(1, 4000);
    sim.elapse(secs(1));
    sim.opened(2);
    sim.text(2, "hello");
    assert_eq!(sim.take().last(), Some(&send_text(2, "resume")));
    sim.reconnect(FRESH).unwrap();
    assert_eq!(
        sim.take(),
        [
            close(2, 1000, "bye"),
            disconnected(2, Reason::UserReconnect(FRESH))
        ]
    );
}

#[test]
fn f11_phase_deadlines() {
    let mut sim = Sim::hello();
    sim.connect().unwrap();
    sim.take();

    // Connect deadline: the pending open is aborted and counts as a failed attempt.
    sim.elapse(secs(5));
    assert_eq!(sim.take(), [abort(1)]);
    sim.open_failed(1, OpenError::new(OpenErrorKind::Aborted, ""));
    assert_eq!(
        sim.take(),
        [reconnecting(secs(1), 2, false, Reason::ConnectTimeout)]
    );
    sim.elapse(secs(1));
    assert_eq!(sim.take(), [open(2), connecting(2, 2)]);

    // Hello deadline: the socket opened but the server says nothing.
    sim.opened(2);
    sim.elapse(ms(4999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(
        sim.take(),
        [
            close(2, 4000, "resume"),
            disconnected(2, Reason::HelloTimeout)
        ]
    );
    sim.peer_closes(2, 4000);
    assert_eq!(
        sim.take(),
        [reconnecting(secs(2), 3, false, Reason::HelloTimeout)]
    );
    sim.elapse(secs(2));
    assert_eq!(sim.take(), [open(3), connecting(3, 3)]);

    // Ready deadline: hello came, the handshake was written, no ready follows.
    sim.opened(3);
    sim.text(3, "hello");
    assert_eq!(sim.take(), [send_text(3, "identify")]);
    sim.elapse(secs(5));
    assert_eq!(
        sim.take(),
        [
            close(3, 4000, "resume"),
            disconnected(3, Reason::ReadyTimeout)
        ]
    );
    // The drain has its own deadline too: no phase can hang.
    sim.elapse(secs(2));
    assert_eq!(sim.take(), [abort(3)]);
    sim.elapse(ms(500));
    assert_eq!(
        sim.take(),
        [reconnecting(secs(4), 4, false, Reason::ReadyTimeout)]
    );
}

#[test]
fn f11_stalled_resume_is_recycled_resuming() {
    let mut sim = Sim::ready_hello();
    sim.peer_closes(1, 1001);
    sim.elapse(secs(1));
    sim.opened(2);
    sim.take();
    sim.elapse(secs(5));
    assert_eq!(
        sim.take(),
        [
            close(2, 4000, "resume"),
            disconnected(2, Reason::HelloTimeout)
        ]
    );
    assert!(sim.client.profile().session.is_some(), "resume state kept");
}

/// Moves a beating plain client to its first heartbeat and returns the ping it sent.
fn first_beat(sim: &mut Sim<tether_core::Plain>) {
    sim.next_deadline();
    assert_eq!(sim.take(), [send(1, ping(1))]);
}

#[test]
fn f12_zombie_connection() {
    let mut sim = Sim::beating();
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    // The first beat falls within the first interval, not at its end.
    assert_eq!(
        sim.client.next_timeout().unwrap().0,
        tether_core::Timer::Heartbeat
    );
    let first = sim.client.poll_timeout().unwrap() - sim.now;
    assert!(first < secs(10), "{first:?}");
    first_beat(&mut sim);
    sim.elapse(ms(40));
    sim.frame(1, pong(1));
    sim.assert_quiet();
    assert_eq!(sim.client.stats().last_heartbeat_rtt, Some(ms(40)));

    sim.elapse(ms(9960));
    assert_eq!(sim.take(), [send(1, ping(2))]);
    // No ack: when the next beat falls due, the connection is a zombie. It is aborted
    // (a close handshake would only wait on a dead peer), and resumed exactly once.
    sim.elapse(ms(9999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(sim.take(), [abort(1), disconnected(1, Reason::Zombie)]);
    assert_eq!(sim.client.stats().zombies, 1);

    // The old connection's heartbeat cannot fire: its deadlines went with it.
    sim.elapse(ms(400));
    sim.assert_quiet();
    sim.closed(1, CloseCause::Aborted);
    assert_eq!(
        sim.take(),
        [
            open(2),
            reconnecting(Duration::ZERO, 1, false, Reason::Zombie),
            connecting(2, 1)
        ]
    );
    sim.opened(2);
    sim.take();
    assert_eq!(sim.client.stats().zombies, 1);
    assert_eq!(sim.client.stats().opens, 2);
}

#[test]
fn f12_late_tick_is_not_a_zombie() {
    let mut sim = Sim::beating();
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    first_beat(&mut sim);

    // The process is suspended for a minute, well past the ack deadline and the next
    // beat. Waking up, it beats now and gives the peer one ack timeout.
    sim.jump(secs(60));
    assert_eq!(sim.take(), [send(1, ping(2))]);
    assert_eq!(sim.client.stats().late_ticks, 1);
    assert_eq!(sim.client.stats().zombies, 0);

    // The answer to the old beat, buffered meanwhile, does not count; the new one does.
    sim.frame(1, pong(1));
    sim.elapse(ms(5));
    sim.frame(1, pong(2));
    sim.elapse(ms(9995));
    assert_eq!(sim.take(), [send(1, ping(3))]);
    assert_eq!(sim.client.state().phase, Phase::Ready);
}

#[test]
fn f12_late_tick_then_silence_is_a_zombie() {
    let mut sim = Sim::beating();
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    first_beat(&mut sim);
    sim.jump(secs(60));
    assert_eq!(sim.take(), [send(1, ping(2))]);
    sim.elapse(secs(10));
    assert_eq!(sim.take(), [abort(1), disconnected(1, Reason::Zombie)]);
}

#[test]
fn f12_heartbeat_request_is_answered_at_once() {
    let mut sim = Sim::ready_hello();
    let interval = "hello:10000";
    sim.peer_closes(1, 4000);
    sim.elapse(secs(1));
    assert_eq!(sim.take()[2..], [open(2), connecting(2, 2)]);
    sim.opened(2);
    sim.frame(2, Frame::text(interval));
    sim.text(2, "resumed");
    assert_eq!(sim.take(), [send_text(2, "resume"), ready(2, true)]);
    assert_eq!(sim.client.stats().resumed, 1);
    sim.text(2, "beat?");
    assert_eq!(sim.take(), [send_text(2, "beat")]);
    sim.text(2, "ack");
    sim.assert_quiet();
}

#[test]
fn f13_no_silent_drop_before_ready() {
    let config = test_config().queue_max_frames(2).build().unwrap();
    let mut sim = Sim::new(config, support::hello_profile::HelloProfile::default());
    // Sends before connecting and while connecting wait, in order.
    let a = sim.send(Frame::text("a")).unwrap();
    sim.connect().unwrap();
    let b = sim.send(Frame::text("b")).unwrap();
    assert!(a < b);
    // Over the bound: refused, the frame handed back.
    let refused = sim.send(Frame::text("c")).unwrap_err();
    assert_eq!(refused.kind, SendErrorKind::QueueFull);
    assert_eq!(refused.frame, Frame::text("c"));
    assert_eq!(sim.take(), [open(1), connecting(1, 1)]);

    // The machine writes the handshake itself, before any application frame.
    sim.opened(1);
    sim.text(1, "hello");
    assert_eq!(sim.take(), [send_text(1, "identify")]);
    sim.text(1, "ready");
    assert_eq!(
        sim.take(),
        [send_text(1, "a"), send_text(1, "b"), ready(1, false)]
    );
    sim.send(Frame::text("d")).unwrap();
    assert_eq!(sim.take(), [send_text(1, "d")]);
}

#[test]
fn f13_queued_frames_survive_failed_attempts() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    sim.send(Frame::text("a")).unwrap();
    sim.open_failed(1, io_error());
    sim.elapse(secs(1));
    sim.take();
    sim.opened(2);
    assert_eq!(sim.take(), [send_text(2, "a"), ready(2, false)]);
}

#[test]
fn f13_expired_sends_are_handed_back_not_sent_late() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    let stale = sim.send_with_ttl(Frame::text("price"), secs(1)).unwrap();
    let keep = sim.send(Frame::text("order")).unwrap();
    sim.take();
    sim.elapse(secs(1));
    assert_eq!(
        sim.take(),
        [ev(E::Returned {
            id: stale,
            frame: Frame::text("price"),
            reason: ReturnReason::Expired
        })]
    );
    sim.opened(1);
    assert_eq!(sim.take(), [send_text(1, "order"), ready(1, false)]);
    assert!(keep > stale);
}

#[test]
fn f13_drop_oldest_policy_reports_what_it_drops() {
    let config = test_config()
        .queue_max_frames(2)
        .overflow(tether_core::OverflowPolicy::DropOldest)
        .build()
        .unwrap();
    let mut sim = Sim::new(config, plain_quiet());
    let a = sim.send(Frame::text("a")).unwrap();
    sim.send(Frame::text("b")).unwrap();
    sim.send(Frame::text("c")).unwrap();
    assert_eq!(
        sim.take(),
        [ev(E::Returned {
            id: a,
            frame: Frame::text("a"),
            reason: ReturnReason::Overflow
        })]
    );
    assert_eq!(sim.client.queued(), (2, 2));
}

#[test]
fn f13_byte_bound_and_oversized_frames() {
    let config = test_config().queue_max_bytes(10).build().unwrap();
    let mut sim = Sim::new(config, plain_quiet());
    let too_big = sim.send(Frame::text("eleven byte")).unwrap_err();
    assert_eq!(too_big.kind, SendErrorKind::TooLarge);
    sim.send(Frame::text("123456")).unwrap();
    let full = sim.send(Frame::text("12345")).unwrap_err();
    assert_eq!(full.kind, SendErrorKind::QueueFull);
    assert_eq!(sim.client.queued(), (1, 6));
    let control = sim.send(ping(1)).unwrap_err();
    assert_eq!(control.kind, SendErrorKind::NotData);
}

#[test]
fn f13_shutdown_hands_back_what_was_never_sent() {
    let mut sim = Sim::plain();
    sim.connect().unwrap();
    let a = sim.send(Frame::text("a")).unwrap();
    let b = sim.send(Frame::binary(&b"b"[..])).unwrap();
    sim.take();
    sim.shutdown();
    let returned: Vec<_> = sim
        .take()
        .into_iter()
        .filter_map(|o| match o {
            Out::Ev(E::Returned { id, frame, reason }) => Some((id, frame, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        returned,
        [
            (a, Frame::text("a"), ReturnReason::Stopped),
            (b, Frame::binary(&b"b"[..]), ReturnReason::Stopped)
        ]
    );
    assert_eq!(sim.client.stats().frames_returned, 2);
}

#[test]
fn invalid_config_is_not_used_here() {
    // The scenarios above run on a valid configuration; invalid ones are in config.rs.
    assert!(Config::builder().build().is_ok());
}

#[test]
fn f13_fire_and_forget_refusals_come_back_as_events() {
    let config = test_config().queue_max_frames(1).build().unwrap();
    let mut sim = Sim::new(config, plain_quiet());
    let now = sim.now;
    let a = sim
        .client
        .send_or_return(Frame::text("a"), tether_core::SendOptions::new(), now);
    let b = sim
        .client
        .send_or_return(Frame::text("b"), tether_core::SendOptions::new(), now);
    assert!(b > a);
    assert_eq!(
        sim.client.poll_event(),
        Some(E::Returned {
            id: b,
            frame: Frame::text("b"),
            reason: ReturnReason::Refused(SendErrorKind::QueueFull)
        })
    );
}
