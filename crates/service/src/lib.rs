//! The application API of smimekit: the only crate the apps call.
