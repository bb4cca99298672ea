#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tether_core::fuzzing::frames(
        tether_core::fuzzing::ProfileKind::OpenClaw,
        data,
        std::time::Instant::now(),
    )
});
