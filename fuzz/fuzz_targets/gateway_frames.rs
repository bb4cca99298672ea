#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tether_gateway::fuzzing::gateway_frames(data, std::time::Instant::now())
});
