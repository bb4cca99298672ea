//! The cost of the machine on the hot paths, with a baseline measured in the same run.
//!
//! - `frame/baseline_queue_roundtrip`: a frame pushed through a `VecDeque` and popped: the
//!   least any event-queue design pays to hand a frame on.
//! - `frame/client_text_frame`: a ready client taking one text frame end to end
//!   (`handle_input`, then `poll_event`).
//! - `heartbeat/client_cycle`: one heartbeat: `handle_timeout` at the deadline, the ping
//!   polled, the matching pong fed back.
//! - `discord/baseline_value_parse`: a 1 KiB dispatch parsed into a `serde_json::Value`.
//! - `discord/client_dispatch`: the same dispatch through a ready discord client, input to
//!   event (only the envelope is parsed; `d` stays raw). Target: at most half the baseline.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tether_core::{
    Client, Command, Config, ConnId, Discord, Event, Frame, Identify, Input, Plain, Token,
    Utf8Bytes,
};

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

/// A MESSAGE_CREATE dispatch of about 1 KiB, as a chat gateway sends them.
fn dispatch_text(seq: u64) -> String {
    let filler = "lorem ipsum dolor sit amet ".repeat(12);
    format!(
        r#"{{"op":0,"s":{seq},"t":"MESSAGE_CREATE","d":{{"id":"1180000000000000{seq:04}","channel_id":"1100000000000000001","guild_id":"1000000000000000001","author":{{"id":"2000000000000000002","username":"someone","discriminator":"0","avatar":"a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6","bot":false}},"member":{{"roles":["3000000000000000003","3000000000000000004"],"joined_at":"2024-01-01T00:00:00.000000+00:00","deaf":false,"mute":false}},"content":"{filler}","timestamp":"2026-11-23T12:00:00.000000+00:00","edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],"attachments":[],"embeds":[],"pinned":false,"type":0,"flags":0,"nonce":"1180000000000000000"}}}}"#
    )
}

fn discord(c: &mut Criterion) {
    let mut group = c.benchmark_group("discord");
    let len = dispatch_text(1).len();
    assert!((900..1300).contains(&len), "dispatch is {len} bytes");

    let mut seq = 1;
    group.bench_function("baseline_value_parse", |b| {
        b.iter_batched(
            || {
                seq += 1;
                Frame::text(dispatch_text(seq))
            },
            |frame| {
                let Frame::Text(text) = frame else {
                    unreachable!()
                };
                black_box(serde_json::from_str::<serde_json::Value>(text.as_str()).unwrap())
            },
            BatchSize::SmallInput,
        )
    });

    let config = Config::builder().seed(1).build().unwrap();
    let profile = Discord::builder(Identify::new(Token::new("t"), 1))
        .build()
        .unwrap();
    let mut client = Client::new(config, profile);
    let t0 = epoch();
    client.connect(t0).unwrap();
    let conn = ConnId::new(1);
    let feed = |client: &mut Client<Discord>, text: &str| {
        client.handle_input(
            Input::Frame {
                conn,
                frame: Frame::text(text.to_owned()),
            },
            t0,
        );
    };
    client.handle_input(Input::Opened { conn }, t0);
    feed(&mut client, r#"{"op":10,"d":{"heartbeat_interval":41250}}"#);
    feed(
        &mut client,
        r#"{"op":0,"s":1,"t":"READY","d":{"session_id":"s","resume_gateway_url":"wss://r"}}"#,
    );
    while client.poll_command().is_some() {}
    while client.poll_event().is_some() {}
    let mut seq = 1;
    group.bench_function("client_dispatch", |b| {
        b.iter_batched(
            || {
                seq += 1;
                Frame::text(dispatch_text(seq))
            },
            |frame| {
                client.handle_input(Input::Frame { conn, frame }, t0);
                let event = client.poll_event();
                assert!(matches!(event, Some(Event::Message { .. })));
                black_box(event)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    assert_eq!(
        client.stats().protocol_errors,
        0,
        "every dispatch was in sequence"
    );
}

criterion_group!(benches, frames, heartbeat, discord);
criterion_main!(benches);
