//! Any bytes found at a store path, opened as every kind of sealed object.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ferry_format::fuzzing::sealed_object(bytes));
