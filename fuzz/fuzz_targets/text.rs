//! Text from outside: store paths in hub and peer requests, store locations, ids, JSON values,
//! recovery phrases, collection and key names.
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    ferry_format::fuzzing::text(text);
    let _ = ferry_store::check_path(text);
    let _ = ferry_store::StoreUrl::parse(text);
});
