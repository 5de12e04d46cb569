//! Template sends: name, language and components with their parameters, as Meta checks them
//! before looking the template up.

use serde_json::Value;

use super::R;
use super::fields::*;
use super::kinds::validate_media;
use super::{MediaRef, TemplateRef};
use crate::graph::errors::GraphError;

pub(super) fn validate_template(v: &Value, media: &mut Vec<MediaRef>) -> R<TemplateRef> {
    let path = "template";
    let m = as_obj(v, path)?;
    only_keys(m, &["name", "language", "components", "namespace"], path)?;
    let name = req_str(m, "name", path)?;
    let lang = m
        .get("language")
        .ok_or_else(|| GraphError::missing("The parameter template['language'] is required."))?;
    let lm = as_obj(lang, "template['language']")?;
    only_keys(lm, &["code", "policy"], "template['language']")?;
    let code = req_str(lm, "code", "template['language']")?;
    if let Some(p) = opt_str(lm, "policy", "template['language']")?
        && p != "deterministic"
    {
        return Err(GraphError::invalid(
            "Param template['language']['policy'] must be \"deterministic\".",
        ));
    }
    let components = match m.get("components") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(GraphError::invalid(
                "Param template['components'] must be an array.",
            ));
        }
    };
    for (i, c) in components.iter().enumerate() {
        let cp = format!("template['components'][{i}]");
        let cm = as_obj(c, &cp)?;
        only_keys(cm, &["type", "sub_type", "index", "parameters"], &cp)?;
        let ctype = req_str(cm, "type", &cp)?;
        if !matches!(ctype, "header" | "body" | "button") {
            return Err(GraphError::invalid(format!(
                "Param {cp}['type'] must be one of {{header, body, button}} - got \"{ctype}\"."
            )));
        }
        if ctype == "button" {
            let st = req_str(cm, "sub_type", &cp)?;
            if !matches!(st, "quick_reply" | "url" | "catalog" | "flow" | "copy_code") {
                return Err(GraphError::invalid(format!(
                    "Param {cp}['sub_type'] is not a valid button sub_type - got \"{st}\"."
                )));
            }
            match cm.get("index") {
                Some(Value::String(s)) if s.parse::<u32>().is_ok() => {}
                Some(Value::Number(n)) if n.as_u64().is_some() => {}
                None => {
                    return Err(GraphError::missing(format!(
                        "The parameter {cp}['index'] is required."
                    )));
                }
                _ => {
                    return Err(GraphError::invalid(format!(
                        "Param {cp}['index'] must be a number."
                    )));
                }
            }
        }
        if let Some(params) = cm.get("parameters") {
            let params = params.as_array().ok_or_else(|| {
                GraphError::invalid(format!("Param {cp}['parameters'] must be an array."))
            })?;
            for (j, p) in params.iter().enumerate() {
                let pp = format!("{cp}['parameters'][{j}]");
                let pm = as_obj(p, &pp)?;
                let ptype = req_str(pm, "type", &pp)?;
                match ptype {
                    "text" => {
                        only_keys(pm, &["type", "text", "parameter_name"], &pp)?;
                        text_field(pm, "text", &pp, 32768)?;
                    }
                    "payload" => {
                        only_keys(pm, &["type", "payload"], &pp)?;
                        req_str(pm, "payload", &pp)?;
                    }
                    "currency" => {
                        only_keys(pm, &["type", "currency", "parameter_name"], &pp)?;
                        let c = pm.get("currency").ok_or_else(|| {
                            GraphError::missing(format!(
                                "The parameter {pp}['currency'] is required."
                            ))
                        })?;
                        let c = as_obj(c, &sub(&pp, "currency"))?;
                        req_str(c, "fallback_value", &sub(&pp, "currency"))?;
                        req_str(c, "code", &sub(&pp, "currency"))?;
                        if !c.get("amount_1000").is_some_and(Value::is_i64) {
                            return Err(GraphError::missing(format!(
                                "The parameter {pp}['currency']['amount_1000'] is required."
                            )));
                        }
                    }
                    "date_time" => {
                        only_keys(pm, &["type", "date_time", "parameter_name"], &pp)?;
                        let d = pm.get("date_time").ok_or_else(|| {
                            GraphError::missing(format!(
                                "The parameter {pp}['date_time'] is required."
                            ))
                        })?;
                        let d = as_obj(d, &sub(&pp, "date_time"))?;
                        req_str(d, "fallback_value", &sub(&pp, "date_time"))?;
                    }
                    "image" | "video" | "document" => {
                        only_keys(pm, &["type", ptype], &pp)?;
                        let mp = sub(&pp, ptype);
                        let obj = pm.get(ptype).ok_or_else(|| {
                            GraphError::missing(format!("The parameter {mp} is required."))
                        })?;
                        if let Some(r) = validate_media(ptype, obj, &mp)? {
                            media.push(r);
                        }
                    }
                    "coupon_code" | "action" => {}
                    other => {
                        return Err(GraphError::invalid(format!(
                            "Param {pp}['type'] is not a valid parameter type - got \"{other}\"."
                        )));
                    }
                }
            }
        }
    }
    Ok(TemplateRef {
        name: name.to_string(),
        language: code.to_string(),
        components,
    })
}
