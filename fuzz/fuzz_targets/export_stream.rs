//! A decrypted export file (`ferry import`, `ferry restore`).
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    ferry_engine::fuzzing::export_stream(bytes);
});
