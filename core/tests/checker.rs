//! The invariant checker must catch what it claims to: each invariant broken on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::*;
use tether_core::invariants::{Call, ClientChecker};
use tether_core::{CloseFrame, Command, Config, Endpoint, Event, Frame, Input, StopReason};

fn checker() -> ClientChecker {
    ClientChecker::new(
        &Config::builder()
            .queue_max_frames(4)
            .queue_max_bytes(100)
            .build()
            .unwrap(),
    )
}

fn open_cmd(n: u64) -> Command {
    Command::Open {
        conn: c(n),
        endpoint: Endpoint::Primary,
    }
}

fn send_cmd(n: u64) -> Command {
    Command::Send {
        conn: c(n),
        frame: Frame::text("x"),
    }
}

fn opened(k: &mut ClientChecker, n: u64) {
    k.command(&open_cmd(n)).unwrap();
    k.input(&Input::Opened { conn: c(n) });
}

#[test]
fn i1_two_sockets_closing() {
    let mut k = checker();
    opened(&mut k, 1);
    k.command(&Command::Close {
        conn: c(1),
        frame: CloseFrame::new(4000, ""),
    })
    .unwrap();
    opened(&mut k, 2);
    let v = k
        .command(&Command::Close {
            conn: c(2),
            frame: CloseFrame::new(4000, ""),
        })
        .unwrap_err();
    assert_eq!(v.invariant, "I1");
}

#[test]
fn i2_send_to_an_older_or_unopened_socket() {
    let mut k = checker();
    opened(&mut k, 1);
    k.command(&send_cmd(1)).unwrap();
    k.command(&open_cmd(2)).unwrap();
    assert_eq!(k.command(&send_cmd(1)).unwrap_err().invariant, "I2");
    assert_eq!(k.command(&send_cmd(2)).unwrap_err().invariant, "I2");
}

#[test]
fn i3_open_after_shutdown_and_anything_after_stopped() {
    let mut k = checker();
    k.call(Call::Shutdown);
    assert_eq!(k.command(&open_cmd(1)).unwrap_err().invariant, "I3");

    let mut k = checker();
    k.event(&Event::<Frame>::Stopped {
        reason: StopReason::Shutdown,
    })
    .unwrap();
    assert_eq!(
        k.command(&Command::Abort { conn: c(1) })
            .unwrap_err()
            .invariant,
        "I3"
    );
    assert_eq!(
        k.event(&Event::<Frame>::Stopped {
            reason: StopReason::Shutdown
        })
        .unwrap_err()
        .invariant,
        "I3"
    );
}

#[test]
fn i4_message_from_another_socket() {
    let mut k = checker();
    opened(&mut k, 1);
    k.command(&open_cmd(2)).unwrap();
    k.input(&Input::Opened { conn: c(2) });
    k.input(&Input::Frame {
        conn: c(1),
        frame: Frame::text("old"),
    });
    let message = Event::<Frame>::Message {
        conn: c(1),
        message: Frame::text("old"),
    };
    assert_eq!(k.event(&message).unwrap_err().invariant, "I4");
}

#[test]
fn i5_open_ids_must_increase() {
    let mut k = checker();
    k.command(&open_cmd(2)).unwrap();
    assert_eq!(k.command(&open_cmd(2)).unwrap_err().invariant, "I5");
    assert_eq!(k.command(&open_cmd(1)).unwrap_err().invariant, "I5");
}

#[test]
fn i7_a_deadline_not_after_now() {
    let k = checker();
    let now = epoch();
    assert_eq!(k.after_timeout(now, Some(now)).unwrap_err().invariant, "I7");
    assert!(
        k.after_timeout(now, Some(now + Duration::from_nanos(1)))
            .is_ok()
    );
    assert!(k.after_timeout(now, None).is_ok());
}

#[test]
fn i8_queue_over_its_bounds() {
    let k = checker();
    assert_eq!(k.bounds((5, 10)).unwrap_err().invariant, "I8");
    assert_eq!(k.bounds((1, 101)).unwrap_err().invariant, "I8");
    assert!(k.bounds((4, 100)).is_ok());
}
