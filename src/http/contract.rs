//! What the OpenAPI document says about every operation that no handler repeats: the path
//! parameters its path names and the refusals the shared middleware and extractors give.
//! Added here, in one place, so a new route cannot forget them.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{
    ObjectBuilder, OpenApi, PathItem, Ref, RefOr, Required, ResponseBuilder, Type,
};

/// Adds the undeclared path parameters (an `id` or `…_id` is an integer, anything else a
/// string) and the error answers every operation can give.
pub struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let names = path_names(path);
            for operation in operations(item) {
                declare_path_parameters(operation, &names);
                declare_errors(operation);
            }
        }
    }
}

/// The `{name}` segments of a path template.
fn path_names(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn declare_path_parameters(operation: &mut Operation, names: &[String]) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for name in names {
        let declared = parameters
            .iter()
            .any(|p| p.name == *name && p.parameter_in == ParameterIn::Path);
        if declared {
            continue;
        }
        let integer = name == "id" || name.ends_with("_id");
        let schema = if integer {
            ObjectBuilder::new().schema_type(Type::Integer).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64),
            ))
        } else {
            ObjectBuilder::new().schema_type(Type::String)
        };
        let parameter: Parameter = ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(schema))
            .build();
        parameters.push(parameter);
    }
}

/// The refusals any operation can answer with, from the middleware (401 without valid
/// credentials, 403 without the permission, 429 past a rate limit) and the extractors
/// (400 for a malformed path, query or body).
fn declare_errors(operation: &mut Operation) {
    let error = || {
        ResponseBuilder::new()
            .description("An error: `{error: {code, message, details?}}`")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                    .build(),
            )
            .build()
    };
    for status in ["400", "401", "403", "429"] {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error()));
    }
}
