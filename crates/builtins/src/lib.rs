//! Links the first-party plugins into a binary so that their `inventory` registrations run.
//!
//! rustc drops a crate nobody references; [`link`] references each plugin crate (one feature
//! each), which keeps its `inventory::submit!` items. This crate has no logic of its own.

/// Call once (the service does) to keep every enabled first-party plugin in the binary.
pub fn link() {
    #[cfg(feature = "keystore-file")]
    smimekit_keystore_file::link();
    #[cfg(feature = "keystore-pkcs11")]
    smimekit_keystore_pkcs11::link();
    #[cfg(feature = "keystore-windows")]
    smimekit_keystore_windows::link();
    #[cfg(feature = "engine-openssl")]
    smimekit_engine_openssl::link();
    #[cfg(feature = "directory-local")]
    smimekit_directory_local::link();
    #[cfg(feature = "directory-ldap")]
    smimekit_directory_ldap::link();
    #[cfg(feature = "directory-exchange")]
    smimekit_directory_exchange::link();
    #[cfg(feature = "store-sql")]
    smimekit_store_sql::link();
}
