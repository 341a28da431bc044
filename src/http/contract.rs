//! What the OpenAPI document says about every operation that no handler repeats: the path
//! parameters its path names, the refusals the shared middleware and extractors give, and
//! request bodies of internally tagged enums a client can actually satisfy. Done here, in
//! one place, on the finished document, so a new route cannot forget them.

use serde_json::{Map, Value, json};

/// The document as served: `openapi` with the additions above.
pub fn finish(openapi: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(openapi).expect("an OpenAPI document serializes");
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let names = path_names(path);
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for method in ["get", "put", "post", "delete", "patch"] {
                if let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) {
                    declare_path_parameters(operation, &names);
                    declare_errors(operation);
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        inline_tagged_variants(schemas);
        open_flattened_variants(schemas);
    }
    doc
}

/// The `{name}` segments of a path template.
fn path_names(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

/// Declares each path segment the operation does not (an `id` or `…_id` is an integer,
/// anything else a string).
fn declare_path_parameters(operation: &mut Map<String, Value>, names: &[String]) {
    let parameters = operation
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("parameters is an array");
    for name in names {
        let declared = parameters
            .iter()
            .any(|p| p["name"] == name.as_str() && p["in"] == "path");
        if !declared {
            let schema = if name == "id" || name.ends_with("_id") {
                json!({"type": "integer", "format": "int64"})
            } else {
                json!({"type": "string"})
            };
            parameters
                .push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
    }
}

/// The refusals any operation can answer with: 400 (a malformed path, query or body), 401
/// (no valid credentials), 403 (no permission), 404 (a named thing, or a project a filter
/// names, does not exist), 422 (a value the rules refuse), 429 (past a rate limit).
fn declare_errors(operation: &mut Map<String, Value>) {
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    for status in ["400", "401", "403", "404", "422", "429"] {
        responses.entry(status).or_insert_with(|| {
            json!({
                "description": "An error: `{error: {code, message, details}}`",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            })
        });
    }
}

/// A serde internally tagged enum is documented as `oneOf: [allOf: [$ref X, {tag}]]`, which
/// no object satisfies when X forbids unknown properties (the tag is one). Each such branch
/// becomes X itself with the tag property added.
fn inline_tagged_variants(schemas: &mut Map<String, Value>) {
    let originals = schemas.clone();
    for schema in schemas.values_mut() {
        let Some(branches) = schema.get_mut("oneOf").and_then(Value::as_array_mut) else {
            continue;
        };
        for branch in branches.iter_mut() {
            if let Some(inlined) = inline_branch(branch, &originals) {
                *branch = inlined;
            }
        }
    }
}

/// A struct that flattens such an enum into its own fields (`allOf: [{$ref X}, {fields}]`,
/// X a `oneOf` of closed objects) is documented as X with the closed objects opened: else
/// the struct's own fields would be unknown properties of every branch.
fn open_flattened_variants(schemas: &mut Map<String, Value>) {
    let originals = schemas.clone();
    for schema in schemas.values_mut() {
        let Some(parts) = schema.get_mut("allOf").and_then(Value::as_array_mut) else {
            continue;
        };
        for part in parts.iter_mut() {
            let Some(name) = part
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            else {
                continue;
            };
            let Some(mut target) = originals.get(name).cloned() else {
                continue;
            };
            let Some(branches) = target.get_mut("oneOf").and_then(Value::as_array_mut) else {
                continue;
            };
            for branch in branches.iter_mut() {
                if let Some(branch) = branch.as_object_mut() {
                    branch.remove("additionalProperties");
                }
            }
            *part = target;
        }
    }
}

/// `allOf: [{$ref X}, {type: object, required: [tag], properties: {tag}}]` → X plus the tag.
fn inline_branch(branch: &Value, schemas: &Map<String, Value>) -> Option<Value> {
    let [reference, tag] = branch.get("allOf")?.as_array()?.as_slice() else {
        return None;
    };
    let name = reference
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")?;
    let mut inlined = schemas.get(name)?.clone();
    let tag_properties = tag.get("properties")?.as_object()?;
    let object = inlined.as_object_mut()?;
    let properties = object
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()?;
    for (key, value) in tag_properties {
        properties.insert(key.clone(), value.clone());
    }
    let required = object
        .entry("required")
        .or_insert_with(|| json!([]))
        .as_array_mut()?;
    for key in tag_properties.keys() {
        required.push(json!(key));
    }
    Some(inlined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_branch_becomes_its_variant_with_the_tag() {
        let mut schemas = json!({
            "Spec": {"oneOf": [{"allOf": [
                {"$ref": "#/components/schemas/A"},
                {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string", "enum": ["a"]}}}
            ]}]},
            "A": {"type": "object", "additionalProperties": false, "required": ["name"],
                  "properties": {"name": {"type": "string"}}}
        });
        inline_tagged_variants(schemas.as_object_mut().unwrap());
        let branch = &schemas["Spec"]["oneOf"][0];
        assert_eq!(branch["properties"]["kind"]["enum"], json!(["a"]));
        assert_eq!(branch["required"], json!(["name", "kind"]));
        assert_eq!(branch["additionalProperties"], json!(false));
    }

    #[test]
    fn a_struct_flattening_a_closed_variant_keeps_its_own_fields() {
        let mut schemas = json!({
            "Spec": {"oneOf": [{"type": "object", "additionalProperties": false,
                                "properties": {"name": {"type": "string"}}}]},
            "Rule": {"allOf": [{"$ref": "#/components/schemas/Spec"},
                               {"type": "object", "properties": {"created_at": {"type": "string"}}}]}
        });
        open_flattened_variants(schemas.as_object_mut().unwrap());
        let opened = &schemas["Rule"]["allOf"][0]["oneOf"][0];
        assert!(opened.get("additionalProperties").is_none(), "{opened}");
        assert_eq!(opened["properties"]["name"]["type"], "string");
        // The request body keeps its closed variants.
        assert_eq!(
            schemas["Spec"]["oneOf"][0]["additionalProperties"],
            json!(false)
        );
    }

    #[test]
    fn undeclared_path_segments_are_declared_once() {
        let mut operation = json!({"parameters": [{"name": "id", "in": "path"}]});
        let names = path_names("/tasks/{id}/runs/{run_id}/log/{name}");
        declare_path_parameters(operation.as_object_mut().unwrap(), &names);
        let parameters = operation["parameters"].as_array().unwrap();
        assert_eq!(parameters.len(), 3);
        assert_eq!(parameters[1]["schema"]["type"], "integer");
        assert_eq!(parameters[2]["schema"]["type"], "string");
    }
}
