//! placeholder
#[test]
fn smoke() {}
