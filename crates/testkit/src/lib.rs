//! Test support: pinned clock, in-memory directory, corpus helpers.
