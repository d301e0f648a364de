//! Any payload of a correctly sealed object (a member device gone rogue), decoded as every kind.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ferry_format::fuzzing::payload(bytes));
