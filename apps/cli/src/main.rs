//! The smimekit command-line interface.
fn main() {}
