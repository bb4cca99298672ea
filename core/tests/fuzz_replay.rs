//! The fuzz targets on the stable toolchain: the committed corpus replayed through the very
//! same target bodies (`tether_core::fuzzing`), the catalogue's sequences run through them as
//! scenarios, and a few thousand generated inputs per target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use tether_core::fuzzing::{self, ProfileKind, Scenario, Step, Target};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    // The virtual clock's origin; only differences matter.
    Instant::now()
}

type Body = fn(&[u8], Instant);

/// The client's targets; the registry's replays in `tether-gateway`.
const TARGETS: [(&str, Body); 3] = [
    ("client_lifecycle", fuzzing::client_lifecycle),
    ("discord_frames", |d, e| {
        fuzzing::frames(ProfileKind::Discord, d, e)
    }),
    ("openclaw_frames", |d, e| {
        fuzzing::frames(ProfileKind::OpenClaw, d, e)
    }),
];

/// The committed seeds of `target` (the fuzzers' own corpus stays local).
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn the_committed_corpus_replays_clean() {
    for (target, body) in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "no committed corpus for {target}");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            body(&data, epoch());
        }
    }
}

/// The committed seeds are the catalogue's sequences written down: each must read as one,
/// or it would silently become fuzzer bytes.
#[test]
fn the_seeds_read_as_catalogue_sequences() {
    let mut named = 0;
    for file in corpus("client_lifecycle") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seed-") {
            let data = std::fs::read(&file).unwrap();
            serde_json::from_slice::<fuzzing::Seed>(&data)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            named += 1;
        }
    }
    assert_eq!(named, 39, "13 catalogue sequences on each of 3 profiles");
}

#[test]
fn generated_inputs_run_clean() {
    let mut rng = fastrand::Rng::with_seed(2026);
    for (_, body) in TARGETS {
        for _ in 0..2_000 {
            let len = rng.usize(0..512);
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            body(&data, epoch());
        }
    }
}

/// The catalogue's sequences (F1, F3, F5, F7, F8, F12 on each profile), through the same
/// scenario runner the fuzz target uses.
#[test]
fn catalogue_sequences_run_through_the_target() {
    use Step::*;
    use Target::*;
    let sequences: Vec<Vec<Step>> = vec![
        // F1: overlapping connects; the old attempt opens late.
        vec![
            Connect,
            Connect,
            Opened(Older(1)),
            Text(Older(1), "late".into()),
            Opened(Current),
        ],
        // F3: failed connect, backoff, user connect during backoff, late failure.
        vec![
            Connect,
            OpenFailed(Current, 0, None),
            Elapse(5),
            Connect,
            OpenFailed(Older(1), 0, None),
            Opened(Current),
        ],
        // F5: shutdown with a socket that never closes.
        vec![
            Connect,
            Opened(Current),
            Send(3, None),
            Shutdown,
            Elapse(1000),
            Opened(Newest),
        ],
        // F7/F8: fresh reconnect, the old socket never closes.
        vec![
            Connect,
            Opened(Current),
            Reconnect(true),
            Elapse(300),
            Opened(Current),
        ],
        // F12: heartbeats unanswered, then a late tick.
        vec![
            Connect,
            Opened(Current),
            Elapse(250),
            Jump(5_000),
            Elapse(250),
        ],
    ];
    for kind in [
        ProfileKind::Plain,
        ProfileKind::Discord,
        ProfileKind::OpenClaw,
    ] {
        for steps in &sequences {
            let scenario = Scenario {
                seed: 7,
                gate: false,
                steps: steps.clone(),
            };
            fuzzing::run_scenario(kind, &scenario, epoch());
        }
    }
}
