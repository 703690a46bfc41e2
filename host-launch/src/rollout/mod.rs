//! A rollout of a new image across the appliances that run an old one (`host-launch update`):
//! which appliances ([`targets`]), the one-rollout-at-a-time lock ([`lock`]), whether an
//! upgraded appliance stays healthy ([`settle`]), and what happened ([`report`]). Each
//! appliance itself is moved by `host-launch upgrade` (its checks, stop, boot, rollback).

pub mod lock;
pub mod report;
pub mod settle;
pub mod targets;
