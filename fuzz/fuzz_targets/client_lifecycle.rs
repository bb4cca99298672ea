#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tether_core::fuzzing::client_lifecycle(data, std::time::Instant::now())
});
