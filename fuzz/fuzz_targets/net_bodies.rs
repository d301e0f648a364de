//! What a hub reads from a client (a claim) and a device from a peer (listings, waits).
#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    ferry_net::fuzzing::hub_claim(bytes);
    ferry_net::fuzzing::peer_answers(bytes);
});
