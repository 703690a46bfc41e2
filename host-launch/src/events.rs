//! Status events from the guest (one JSON object per line on UML's `con1`), and how they are
//! shown to the operator; the format and the typed events are the contract's
//! ([`contract::status`]). A line is the guest's: it tells the host about that VM and
//! nothing else.

use serde_json::Value;

pub use contract::status::{parse, parse_value, Event, Line};

/// `{"event":"ready","pid":42,"ts_us":..}` → `ready: pid=42` (without the clocks), from the
/// object as it came (a recorded event, or another init's with fields of its own).
pub fn human(v: &Value) -> String {
    contract::status::human(contract::status::name(v), v)
}
