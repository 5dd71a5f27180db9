//! Who is asking: API token secrets and the authenticated [`Actor`].

mod actor;
mod token;

pub use actor::{Actor, ActorKind};
pub use token::{TokenSecret, hash_token, hashes_equal};
