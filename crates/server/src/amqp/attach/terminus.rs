//! What a source or target asks for: capabilities (`topic`, `shared`, `global`),
//! durability, the name of a durable subscription, a JMS selector filter.

use throng_amqp::codec::{Symbol, Value};
use throng_amqp::definitions::Source;
use throng_selector::Selector;

pub(super) fn has_capability(caps: &Option<Vec<Symbol>>, name: &str) -> bool {
    caps.as_ref()
        .is_some_and(|c| c.iter().any(|s| s.as_str() == name))
}

/// Whether a source asks for a durable subscription: terminus durability and
/// expiry-policy `never` (as JMS durable subscribers attach).
pub(super) fn is_durable(source: &Source) -> bool {
    source.durable.unwrap_or(0) > 0
        && source
            .expiry_policy
            .as_ref()
            .is_some_and(|p| p.as_str() == "never")
}

/// A durable subscription's name: `container-id|link-name`; shared subscriptions
/// (capability `shared`) drop the `|N` suffix JMS adds per consumer, and global ones
/// (capability `global`) are not scoped by container-id.
pub(super) fn subscription_name(
    container_id: &str,
    link_name: &str,
    source: Option<&Source>,
) -> String {
    let caps = source.and_then(|s| s.capabilities.clone());
    if has_capability(&caps, "shared") {
        let base = link_name.split('|').next().unwrap_or(link_name);
        if has_capability(&caps, "global") {
            return base.to_string();
        }
        return format!("{container_id}|{base}");
    }
    format!("{container_id}|{link_name}")
}

/// The descriptor of a JMS selector filter (AMQP filters registry), symbolic and numeric.
const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

/// The JMS selector in a source's filter set, if any, parsed.
pub(super) fn selector_of(source: &Source) -> Result<Option<Selector>, String> {
    let Some(filters) = &source.filter else {
        return Ok(None);
    };
    for (_, value) in filters {
        let Value::Described(descriptor, expr) = value else {
            continue;
        };
        let is_selector = match descriptor.as_ref() {
            Value::Symbol(s) => s.as_str() == SELECTOR_FILTER,
            Value::Ulong(code) => *code == SELECTOR_FILTER_CODE,
            _ => false,
        };
        if !is_selector {
            continue;
        }
        let Some(text) = expr.as_str() else {
            return Err("the selector filter must hold a string".into());
        };
        return Selector::parse(text)
            .map(Some)
            .map_err(|e| format!("invalid selector: {e}"));
    }
    Ok(None)
}
