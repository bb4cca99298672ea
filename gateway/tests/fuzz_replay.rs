//! The `registry` and `gateway_frames` fuzz targets on the stable toolchain: their committed
//! corpus replayed through the very same bodies (`tether_gateway::fuzzing`), S1 to S3 as a
//! sequence, and a few thousand generated inputs each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use tether_gateway::fuzzing::{self, GatewayScenario, RegistryStep};

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    // The virtual clock's origin; only differences matter.
    Instant::now()
}

/// The committed seeds of `target` (the fuzzer's own corpus stays local).
fn corpus_of(target: &str) -> Vec<PathBuf> {
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

fn corpus() -> Vec<PathBuf> {
    corpus_of("registry")
}

#[test]
fn the_gateway_corpus_replays_clean_and_reads_as_scenarios() {
    let files = corpus_of("gateway_frames");
    assert!(!files.is_empty(), "no committed corpus for gateway_frames");
    for file in files {
        let data = std::fs::read(&file).unwrap();
        serde_json::from_slice::<GatewayScenario>(&data)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        fuzzing::gateway_frames(&data, epoch());
    }
}

#[test]
fn generated_gateway_inputs_run_clean() {
    let mut rng = fastrand::Rng::with_seed(2027);
    for _ in 0..2_000 {
        let len = rng.usize(0..768);
        let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        fuzzing::gateway_frames(&data, epoch());
    }
}

#[test]
fn the_committed_corpus_replays_clean_and_reads_as_sequences() {
    let files = corpus();
    assert!(!files.is_empty(), "no committed corpus for registry");
    for file in files {
        let data = std::fs::read(&file).unwrap();
        serde_json::from_slice::<Vec<RegistryStep>>(&data)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        fuzzing::registry(&data, epoch());
    }
}

#[test]
fn generated_inputs_run_clean() {
    let mut rng = fastrand::Rng::with_seed(2026);
    for _ in 0..2_000 {
        let len = rng.usize(0..512);
        let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        fuzzing::registry(&data, epoch());
    }
}

#[test]
fn s01_to_s03_as_a_sequence() {
    // A replaced session, a late close of the old connection, a result.
    fuzzing::run_registry(
        &[
            RegistryStep::Accept,
            RegistryStep::Register(0, 0),
            RegistryStep::Accept,
            RegistryStep::Register(1, 0),
            RegistryStep::Invoke(0, 100),
            RegistryStep::Close(0),
            RegistryStep::Result(1, 0),
            RegistryStep::Elapse(200),
        ],
        epoch(),
    );
}
