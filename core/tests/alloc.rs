//! No heap allocation per frame in steady state beyond what the frame itself brings,
//! counted by a counting global allocator (dhat's, so this crate needs no `unsafe`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tether_core::{Client, Command, Config, Event, Frame, Input, Plain, Utf8Bytes};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    // The virtual clock's origin; only differences matter.
    Instant::now()
}

/// Runs without the test harness (see `Cargo.toml`), so nothing else allocates meanwhile.
fn main() {
    steady_state_frames_allocate_nothing();
    println!("alloc: 1 passed, 0 failed");
}

fn steady_state_frames_allocate_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let config = Config::builder().seed(1).build().unwrap();
    let profile = Plain::builder()
        .heartbeat_interval(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    let mut client = Client::new(config, profile);
    let t0 = epoch();
    client.connect(t0).unwrap();
    let Some(Command::Open { conn, .. }) = client.poll_command() else {
        panic!("expected Open");
    };
    client.handle_input(Input::Opened { conn }, t0);
    while client.poll_event().is_some() {}

    // The frames already exist: their payloads are what they bring, not the machine's.
    let text = Frame::Text(Utf8Bytes::from_static("{\"op\":0,\"s\":1}"));
    let binary = Frame::Binary(bytes::Bytes::from_static(&[1, 2, 3, 4]));
    let outgoing = Frame::Text(Utf8Bytes::from_static("reply"));
    let now = t0 + Duration::from_millis(1);

    let round = |client: &mut Client<Plain>| {
        let mut messages = 0;
        for frame in [&text, &binary] {
            client.handle_input(
                Input::Frame {
                    conn,
                    frame: frame.clone(),
                },
                now,
            );
            while let Some(event) = client.poll_event() {
                if matches!(event, Event::Message { .. }) {
                    messages += 1;
                }
            }
        }
        client.send(outgoing.clone(), now).unwrap();
        assert!(matches!(client.poll_command(), Some(Command::Send { .. })));
        messages
    };

    // Warm up: the machine's queues reach their working capacity.
    for _ in 0..100 {
        assert_eq!(round(&mut client), 2);
    }
    let before = dhat::HeapStats::get();
    let mut messages = 0;
    for _ in 0..10_000 {
        messages += round(&mut client);
    }
    let after = dhat::HeapStats::get();

    assert_eq!(messages, 20_000);
    let allocations = after.total_blocks - before.total_blocks;
    dhat::assert_eq!(allocations, 0);
}
