//! Pairing objects in a store or through a hub, and invite lines a person pastes.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ferry_format::fuzzing::pairing(bytes));
