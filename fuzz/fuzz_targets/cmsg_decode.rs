//! Feeds arbitrary bytes to the control-message decoder, as if the kernel had
//! written them: it must never panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    volley::fuzzing::decode_control(data);
});
