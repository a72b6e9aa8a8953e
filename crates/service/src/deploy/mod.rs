//! Deploy by plan and apply: the organisation's S/MIME state in one file (`deploy.toml`),
//! reconciled with every directory it names.
//!
//! [`spec`] reads the deploy file and everything it names into a [`Desired`] state (through a
//! [`DeploySource`]: the service never opens paths itself), reporting every problem at once with
//! its file and line. It decides nothing about directories; planning and applying do.

pub mod apply;
pub mod plan;
pub mod spec;
pub mod status;

pub use apply::{ApplyEmit, ApplyReport, ApplyRequest, ApplyStep, Deliver, Delivery};
pub use plan::{DEFAULT_INVENTORY_MAX_AGE, Plan, PlanRequest, PlanSummary};
pub use spec::{
    DeployError, DeploySource, Desired, FsDeploySource, Origin, Person, Policy, TrustSpec,
    Unmanaged, load,
};
pub use status::{StatusEntry, StatusReport, StatusRequest};
