#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tether_core::fuzzing::frames(
        tether_core::fuzzing::ProfileKind::Discord,
        data,
        std::time::Instant::now(),
    )
});
