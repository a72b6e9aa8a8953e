//! Project automation: benchmarks, test PKI regeneration.
fn main() {}
