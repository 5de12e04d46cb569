//! Message templates of a WABA: creation with Meta's rules (name charset, language, category,
//! components, examples for variables, one per name+language), review (PENDING, then APPROVED or
//! REJECTED after a delay, with a `message_template_status_update` webhook), listing with cursor
//! paging, deletion by name / hsm_id, and the check of a template send (132001 when missing or
//! not approved, 132000 when the parameter count differs, 132012 when a parameter type does).
//!
//! Name rules of the simulated reviewer: a name starting with `reject_` is always REJECTED
//! (reason INVALID_FORMAT) and one starting with `pending_` stays PENDING forever; any other
//! name gets `GraphSimConfig::template_review_outcome`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::config::TemplateReviewOutcome;
use super::errors::GraphError;
use super::records::Template;
use super::state::{Sim, unix_now};
use super::webhooks;

mod check;
mod parse;

pub use check::check_send;
use parse::bad;
pub use parse::parse_create;

/// Creates a template (after the duplicate check) and schedules its review.
pub fn create(sim: &Arc<Sim>, waba_id: &str, body: &Value) -> Result<Value, GraphError> {
    let tpl = parse_create(waba_id, body)?;
    let reply = json!({"id": tpl.id.to_string(), "status": "PENDING", "category": tpl.category});
    {
        let mut st = sim.lock();
        if st
            .templates
            .iter()
            .any(|t| t.waba_id == waba_id && t.name == tpl.name && t.language == tpl.language)
        {
            let mut e = bad(format!(
                "Content in this language already exists: a template named \"{}\" in {} exists.",
                tpl.name, tpl.language
            ));
            e.subcode = Some(2388024);
            return Err(e);
        }
        st.templates.push(tpl.clone());
    }
    if !tpl.name.starts_with("pending_") {
        let sim2 = Arc::clone(sim);
        let delay = sim.config.template_review_delay;
        sim.spawn(async move {
            tokio::time::sleep(delay).await;
            review(&sim2, tpl.id);
        });
    }
    Ok(reply)
}

/// Decides a PENDING template and announces it.
fn review(sim: &Arc<Sim>, id: u64) {
    let decided = {
        let mut st = sim.lock();
        let Some(t) = st
            .templates
            .iter_mut()
            .find(|t| t.id == id && t.status == "PENDING")
        else {
            return;
        };
        let reject = t.name.starts_with("reject_")
            || sim.config.template_review_outcome == TemplateReviewOutcome::Rejected;
        if reject {
            t.status = "REJECTED".to_string();
            t.rejected_reason = Some("INVALID_FORMAT".to_string());
        } else {
            t.status = "APPROVED".to_string();
            t.rejected_reason = Some("NONE".to_string());
        }
        t.clone()
    };
    let mut value = json!({
        "event": decided.status,
        "message_template_id": decided.id,
        "message_template_name": decided.name,
        "message_template_language": decided.language,
        "reason": decided.rejected_reason.clone().unwrap_or_else(|| "NONE".into()),
        "message_template_category": decided.category,
    });
    if decided.status == "REJECTED" {
        value["rejection_info"] = json!({
            "reason": "The simulator rejected this template (name rule `reject_` or configuration).",
            "recommendation": "Use a name that does not start with `reject_`, or configure approval.",
        });
    }
    let entry = json!({
        "id": decided.waba_id,
        "time": unix_now(),
        "changes": [{"field": "message_template_status_update", "value": value}],
    });
    webhooks::emit_for_waba(sim, &decided.waba_id, entry);
}

fn cursor(i: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("idx:{i}"))
}

fn uncursor(c: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("idx:")?
        .parse()
        .ok()
}

/// `GET /{waba_id}/message_templates`: filters `name` (substring), `status`, `language`,
/// `category`; paging with `limit` (default 25) and `after` / `before` cursors.
pub fn list(
    sim: &Sim,
    waba_id: &str,
    query: &[(String, String)],
    self_url: &str,
) -> Result<Value, GraphError> {
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let limit = match q("limit") {
        None => 25,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(bad("Param limit must be a number between 1 and 1000.")),
        },
    };
    let all: Vec<Value> = {
        let st = sim.lock();
        st.templates
            .iter()
            .filter(|t| t.waba_id == waba_id)
            .filter(|t| q("name").is_none_or(|n| t.name.contains(n)))
            .filter(|t| q("status").is_none_or(|s| t.status.eq_ignore_ascii_case(s)))
            .filter(|t| q("language").is_none_or(|l| t.language == l))
            .filter(|t| q("category").is_none_or(|c| t.category.eq_ignore_ascii_case(c)))
            .map(Template::to_json)
            .collect()
    };
    let start = match (q("after"), q("before")) {
        (Some(a), _) => uncursor(a).ok_or_else(|| bad("Param after is not a valid cursor."))? + 1,
        (None, Some(b)) => {
            let b = uncursor(b).ok_or_else(|| bad("Param before is not a valid cursor."))?;
            b.saturating_sub(limit)
        }
        (None, None) => 0,
    };
    let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    if page.is_empty() {
        return Ok(json!({"data": []}));
    }
    let last = start + page.len() - 1;
    let mut paging = json!({"cursors": {"before": cursor(start), "after": cursor(last)}});
    if last + 1 < all.len() {
        let mut url = reqwest::Url::parse(self_url).map_err(|e| bad(e.to_string()))?;
        {
            let mut qp = url.query_pairs_mut();
            qp.clear();
            for (k, v) in query {
                if k != "after" && k != "before" && k != "access_token" {
                    qp.append_pair(k, v);
                }
            }
            qp.append_pair("limit", &limit.to_string());
            qp.append_pair("after", &cursor(last));
        }
        paging["next"] = json!(url.to_string());
    }
    Ok(json!({"data": page, "paging": paging}))
}

/// `DELETE /{waba_id}/message_templates?name=..[&hsm_id=..]`: name alone deletes every
/// language, with `hsm_id` only that one.
pub fn delete(sim: &Sim, waba_id: &str, query: &[(String, String)]) -> Result<Value, GraphError> {
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let name = q("name").ok_or_else(|| bad("The parameter name is required."))?;
    let hsm_id = q("hsm_id");
    let mut st = sim.lock();
    let before = st.templates.len();
    st.templates.retain(|t| {
        !(t.waba_id == waba_id
            && t.name == name
            && hsm_id.as_ref().is_none_or(|h| *h == t.id.to_string()))
    });
    if st.templates.len() == before {
        let mut e = bad(format!("Message template \"{name}\" not found."));
        e.subcode = Some(2593002);
        return Err(e);
    }
    Ok(json!({"success": true}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::messages::TemplateRef;

    fn approved(components: Value) -> Template {
        let mut t = parse_create(
            "w",
            &json!({"name":"order_update","language":"en_US","category":"UTILITY","components":components}),
        )
        .expect("valid template");
        t.status = "APPROVED".into();
        t
    }

    fn send(components: Value) -> TemplateRef {
        TemplateRef {
            name: "order_update".into(),
            language: "en_US".into(),
            components: components.as_array().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn creation_rules() {
        let ok = json!({"name":"a_1","language":"en_US","category":"marketing",
            "components":[{"type":"BODY","text":"Hi {{1}}","example":{"body_text":[["Ana"]]}}]});
        assert!(parse_create("w", &ok).is_ok());
        let mut upper = ok.clone();
        upper["name"] = json!("Bad-Name");
        assert_eq!(parse_create("w", &upper).unwrap_err().code, 100);
        let mut no_example = ok.clone();
        no_example["components"] = json!([{"type":"BODY","text":"Hi {{1}}"}]);
        assert!(parse_create("w", &no_example).is_err());
        let mut gap = ok.clone();
        gap["components"] =
            json!([{"type":"BODY","text":"Hi {{2}}","example":{"body_text":[["x"]]}}]);
        assert!(parse_create("w", &gap).is_err());
    }

    #[test]
    fn send_checks() {
        let t = approved(json!([
            {"type":"HEADER","format":"IMAGE"},
            {"type":"BODY","text":"Hi {{1}}, order {{2}}","example":{"body_text":[["Ana","7"]]}},
            {"type":"BUTTONS","buttons":[{"type":"URL","text":"Track","url":"https://x.io/{{1}}"}]}
        ]));
        let templates = vec![t];
        let good = send(json!([
            {"type":"header","parameters":[{"type":"image","image":{"link":"https://x.io/a.jpg"}}]},
            {"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"7"}]},
            {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"o/7"}]}
        ]));
        assert!(check_send(&templates, "w", &good).is_ok());
        let short = send(json!([
            {"type":"header","parameters":[{"type":"image","image":{"link":"https://x.io/a.jpg"}}]},
            {"type":"body","parameters":[{"type":"text","text":"Ana"}]},
            {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"o/7"}]}
        ]));
        assert_eq!(
            check_send(&templates, "w", &short).unwrap_err().code,
            132000
        );
        let mut other_lang = good.clone();
        other_lang.language = "pt_BR".into();
        assert_eq!(
            check_send(&templates, "w", &other_lang).unwrap_err().code,
            132001
        );
    }
}
