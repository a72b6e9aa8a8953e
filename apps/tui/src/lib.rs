//! `smimekit-tui`: the administrator's terminal console (ratatui), thin over
//! `smimekit-service` like the CLI and the web admin: the same calls, job events and plan text.
//!
//! [`app`] is the state and what keys and results do to it (pure, tested without a terminal),
//! [`keymap`] the one table of keys, [`ui`] draws a frame from the state, [`runner`] runs the
//! service calls as tasks posting results back, so the draw loop never waits. It does not
//! talk to plugins or the store: only the service.

pub mod app;
pub mod cli;
pub mod keymap;
pub mod runner;
pub mod ui;
