//! The cost of the machine on the hot paths, with a baseline measured in the same run.
//!
//! - `frame/baseline_queue_roundtrip`: a frame pushed through a `VecDeque` and popped: the
//!   least any event-queue design pays to hand a frame on.
//! - `frame/client_text_frame`: a ready client taking one text frame end to end
//!   (`handle_input`, then `poll_event`).
//! - `heartbeat/client_cycle`: one heartbeat: `handle_timeout` at the deadline, the ping
//!   polled, the matching pong fed back.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tether_core::{Client, Command, Config, ConnId, Event, Frame, Input, Plain, Utf8Bytes};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    // The virtual clock's origin; only differences matter.
    Instant::now()
}

fn ready_client(heartbeat: Option<Duration>) -> (Client<Plain>, ConnId, Instant) {
    let config = Config::builder().seed(1).build().unwrap();
    let profile = Plain::builder()
        .heartbeat_interval(heartbeat)
        .build()
        .unwrap();
    let mut client = Client::new(config, profile);
    let t0 = epoch();
    client.connect(t0).unwrap();
    let Some(Command::Open { conn, .. }) = client.poll_command() else {
        panic!("expected Open");
    };
    client.handle_input(Input::Opened { conn }, t0);
    while client.poll_command().is_some() {}
    while client.poll_event().is_some() {}
    (client, conn, t0)
}

fn text_frame() -> Frame {
    Frame::Text(Utf8Bytes::from_static(
        r#"{"op":0,"t":"MESSAGE_CREATE","s":42,"d":{"content":"hello"}}"#,
    ))
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let frame = text_frame();

    let mut queue: VecDeque<Event<Frame>> = VecDeque::with_capacity(16);
    let conn = ConnId::new(1);
    group.bench_function("baseline_queue_roundtrip", |b| {
        b.iter(|| {
            queue.push_back(Event::Message {
                conn,
                message: black_box(frame.clone()),
            });
            black_box(queue.pop_front())
        })
    });

    let (mut client, conn, t0) = ready_client(None);
    let now = t0 + Duration::from_millis(1);
    group.bench_function("client_text_frame", |b| {
        b.iter(|| {
            client.handle_input(
                Input::Frame {
                    conn,
                    frame: black_box(frame.clone()),
                },
                now,
            );
            black_box(client.poll_event())
        })
    });
    group.finish();
}

fn heartbeat(c: &mut Criterion) {
    let (mut client, conn, _) = ready_client(Some(Duration::from_secs(30)));
    c.bench_function("heartbeat/client_cycle", |b| {
        b.iter(|| {
            let due = client.poll_timeout().unwrap();
            client.handle_timeout(due);
            let Some(Command::Send {
                frame: Frame::Ping(payload),
                ..
            }) = client.poll_command()
            else {
                panic!("expected a ping");
            };
            client.handle_input(
                Input::Frame {
                    conn,
                    frame: Frame::Pong(payload),
                },
                due + Duration::from_millis(20),
            );
            black_box(client.poll_event())
        })
    });
}

criterion_group!(benches, frames, heartbeat);
criterion_main!(benches);
