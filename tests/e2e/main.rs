//! End-to-end tests: one binary, one module per area.
//!
//! They run the real `smimekit` binary (built by cargo for this test target) and the real
//! `openssl` and `gpgsm`, and read the interop corpus in place from `../shared/corpus`.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod bare_key;
mod ca;
mod cli;
mod common;
mod conformance;
mod corpus;
mod demo;
mod deploy;
mod directory;
mod exchange;
mod interop;
mod ldap;
mod pkcs11;
mod pki;
mod plugin_check;
mod plugin_host;
mod plugins;
mod secrets;
mod sessions;
mod softhsm;
mod store;
mod tidy;
mod verdicts;
mod web_api;
mod web_pages;
