#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tether_gateway::fuzzing::registry(data, std::time::Instant::now())
});
