//! End-to-end tests live in `e2e/` (one test binary, ripgrep style); this library is empty.
