//! What the web's handler tests share: the service on a real store with the clock pinned and
//! three users (vic the viewer, otto the operator, ada the admin, all "correct horse"), the
//! fixture holding the router, and the committed test PKI.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use smimekit_service::{Config, Role, Secret, Service, ServiceBuilder};

/// 2027-01-15: the committed test PKI is valid then (2025 to 2045).
pub const T0: i64 = 1_800_000_000;

pub struct Fixture {
    pub app: axum::Router,
    pub now: Arc<AtomicI64>,
    pub service: Service,
    pub _tmp: tempfile::TempDir,
}

/// A file of the committed test PKI.
pub fn pki(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pki")
            .join(name),
    )
    .unwrap()
}

/// The service for `config`, its clock at [`T0`] (moved through the returned counter), acting
/// as "test" from "web", with the three users.
pub async fn service_with_users(config: Config) -> (Service, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(T0));
    let clock = now.clone();
    let service = ServiceBuilder::default()
        .config(config)
        .clock(Arc::new(move || clock.load(Ordering::SeqCst)))
        .actor("test", "web")
        .build()
        .unwrap();
    for (name, role) in [
        ("vic", Role::Viewer),
        ("otto", Role::Operator),
        ("ada", Role::Admin),
    ] {
        service
            .user_add(name, role, &Secret::new(b"correct horse".to_vec()))
            .await
            .unwrap();
    }
    (service, now)
}
