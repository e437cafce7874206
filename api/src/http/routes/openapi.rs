//! The published form of the generated OpenAPI document. utoipa writes a type with
//! `#[serde(deny_unknown_fields)]` as `additionalProperties: false`, and a `#[serde(flatten)]` field as an
//! `allOf` of the flattened type and the rest. Together those admit nothing: each `allOf` member refuses the
//! properties the others declare. JSON Schema 2020-12 (OpenAPI 3.1) closes a composition with
//! `unevaluatedProperties: false` on the outermost schema instead, which sees every member's properties; so
//! members lose their `additionalProperties: false` and the outermost closed composition gets
//! `unevaluatedProperties: false`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

/// The document as served: compositions closed the way JSON Schema means it.
pub fn published(document: &utoipa::openapi::OpenApi) -> Value {
    let mut document = serde_json::to_value(document).unwrap_or_default();
    if let Some(schemas) = document.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        close_compositions(schemas);
    }
    document
}

fn close_compositions(schemas: &mut Map<String, Value>) {
    let members = composition_members(schemas);
    // Whether each schema is closed, decided before any is changed: a composition is closed when any part
    // of it is (a member schema or an inline part that refused other properties).
    let closed: BTreeSet<String> =
        schemas.keys().filter(|name| is_closed(schemas, name, &mut BTreeSet::new())).cloned().collect();
    for (name, schema) in schemas.iter_mut() {
        let Some(object) = schema.as_object_mut() else { continue };
        let composed = object.contains_key("allOf");
        if let Some(parts) = object.get_mut("allOf").and_then(Value::as_array_mut) {
            for part in parts {
                open(part);
            }
        }
        if members.contains(name) || composed {
            object.remove("additionalProperties");
        }
        if composed && closed.contains(name) && !members.contains(name) {
            object.insert("unevaluatedProperties".to_owned(), Value::Bool(false));
        }
    }
}

/// Names of the schemas some `allOf` refers to.
fn composition_members(schemas: &Map<String, Value>) -> BTreeSet<String> {
    schemas
        .values()
        .filter_map(|schema| schema.get("allOf")?.as_array())
        .flatten()
        .filter_map(referenced_name)
        .map(str::to_owned)
        .collect()
}

fn referenced_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(SCHEMA_REF_PREFIX)
}

fn is_closed(schemas: &Map<String, Value>, name: &str, seen: &mut BTreeSet<String>) -> bool {
    if !seen.insert(name.to_owned()) {
        return false;
    }
    let Some(schema) = schemas.get(name) else { return false };
    let refuses_others = |schema: &Value| schema.get("additionalProperties") == Some(&Value::Bool(false));
    refuses_others(schema)
        || schema.get("allOf").and_then(Value::as_array).is_some_and(|parts| {
            parts.iter().any(|part| match referenced_name(part) {
                Some(member) => is_closed(schemas, member, seen),
                None => refuses_others(part),
            })
        })
}

fn open(part: &mut Value) {
    if let Some(object) = part.as_object_mut() {
        object.remove("additionalProperties");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn flattened_closed_types_become_one_closed_composition() {
        let mut schemas = json!({
            "Settings": { "type": "object", "additionalProperties": false, "properties": { "lobby": {} } },
            "Input": { "allOf": [
                { "$ref": "#/components/schemas/Settings" },
                { "type": "object", "additionalProperties": false, "properties": { "title": {} } }
            ] },
            "Request": { "allOf": [
                { "$ref": "#/components/schemas/Input" },
                { "type": "object", "properties": { "organizer": {} } }
            ] },
            "Room": { "allOf": [
                { "$ref": "#/components/schemas/Settings" },
                { "type": "object", "properties": { "name": {} } }
            ] },
            "Open": { "allOf": [ { "type": "object", "properties": { "x": {} } } ] },
            "Alone": { "type": "object", "additionalProperties": false }
        });
        close_compositions(schemas.as_object_mut().expect("an object"));
        assert_eq!(schemas["Settings"].get("additionalProperties"), None, "a member admits its siblings' fields");
        assert_eq!(schemas["Input"]["allOf"][1].get("additionalProperties"), None);
        assert_eq!(schemas["Input"].get("unevaluatedProperties"), None, "a member is closed by its container");
        assert_eq!(schemas["Request"]["unevaluatedProperties"], json!(false), "closed at the outermost schema");
        assert_eq!(schemas["Room"]["unevaluatedProperties"], json!(false));
        assert_eq!(schemas["Open"].get("unevaluatedProperties"), None, "nothing closed stays open");
        assert_eq!(schemas["Alone"]["additionalProperties"], json!(false), "plain objects keep their closure");
    }
}
