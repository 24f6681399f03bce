//! Feeds arbitrary slot contents, lengths and strides to the GRO splitter;
//! the splitter's invariants (the pieces tile the slot, none longer than the
//! stride, only the last shorter or truncated) are asserted inside.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u16, bool, &[u8])| {
    let (len, stride, truncated, data) = input;
    volley::fuzzing::split(data, usize::from(len), usize::from(stride), truncated);
});
