//! Status events from the guest (one JSON object per line on UML's `con1`), and how they are
//! shown to the operator; the format is the contract's ([`contract::status`]).

use serde_json::Value;

pub use contract::status::{name, parse};

/// `{"event":"ready","pid":42,"ts_us":..}` → `ready: pid=42` (without the clocks).
pub fn human(v: &Value) -> String {
    contract::status::human(name(v), v)
}
