//! The lease coordinator, on the lease builder of the kit: coordinators
//! running one recording leader loop each. Whole replicas are in
//! `replica.rs`.

mod election;
mod lost_replies;
mod shutdown;
mod step_down;
