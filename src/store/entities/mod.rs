//! sea-orm entities, written by hand to match the migrations. Rows, not domain types:
//! repositories convert at the edge.

pub mod api_token;
pub mod artifact;
pub mod audit_checkpoint;
pub mod audit_record;
pub mod calendar_feed;
pub mod certificate;
pub mod console_session;
pub mod consumer;
pub mod decommission_step;
pub mod disabled_version;
pub mod emergency_deployment;
pub mod enforcement_confirmation;
pub mod erased_key;
pub mod grant;
pub mod inventory_change;
pub mod inventory_edge;
pub mod job_run;
pub mod kek_rotation_lock;
pub mod model;
pub mod model_policy;
pub mod model_version;
pub mod notice;
pub mod promotion_request;
pub mod purge_confirmation;
pub mod replica;
pub mod retirement;
pub mod retirement_dependent;
pub mod retirement_event;
pub mod revocation;
pub mod scan_cursor;
pub mod signer;
pub mod version_signature;
pub mod version_validation;
pub mod webhook_receipt;
pub mod webhook_source;
