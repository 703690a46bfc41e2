//! The contract as a whole must fit the largest config device that can carry it
//! ([`crate::blockdev::MAX_PAYLOAD`]); checked here so that every host, not only ours, refuses
//! it before boot instead of a guest that cannot read it.

use super::Checker;
use crate::blockdev::MAX_PAYLOAD;
use crate::types::Contract;
use serde_json::Value;

pub(super) fn check_size(ck: &mut Checker, c: &Contract) {
    let len = crate::to_json(c).len();
    if len <= MAX_PAYLOAD {
        return;
    }
    // Name the largest single value, which is what the operator has to move.
    let (path, largest) = serde_json::to_value(c)
        .ok()
        .and_then(|v| largest_leaf(&v, String::new()))
        .unwrap_or_else(|| ("(top level)".into(), len));
    ck.push(
        path,
        format!(
            "the contract's JSON is {len} bytes, more than the {MAX_PAYLOAD} bytes (16 MiB) of the \
             largest config device that can carry it; this value alone is {largest} bytes: put \
             large content on a data disk (mounts.disks) instead"
        ),
    );
}

/// The JSON path and serialised size of the largest string, number or boolean in `v`.
fn largest_leaf(v: &Value, at: String) -> Option<(String, usize)> {
    let children: Box<dyn Iterator<Item = (String, &Value)>> = match v {
        Value::Object(map) => Box::new(map.iter().map(|(k, v)| (join(&at, k), v))),
        Value::Array(items) => Box::new(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{at}[{i}]"), v)),
        ),
        leaf => return Some((at, leaf.to_string().len())),
    };
    children
        .filter_map(|(path, child)| largest_leaf(child, path))
        .max_by_key(|(_, n)| *n)
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_leaf_is_named_by_its_path() {
        let v = serde_json::json!({"a": "xy", "b": {"c": ["1", "12345"]}, "d": true});
        assert_eq!(
            largest_leaf(&v, String::new()),
            Some(("b.c[1]".to_string(), 7))
        );
    }
}
