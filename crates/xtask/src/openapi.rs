//! docs/openapi/api.swagger.yaml: protoc-gen-openapiv2's output, then what
//! the plugin cannot say from the protos. Its only success status is 200 for
//! every method (its one switch, `disable_default_responses`, drops them all);
//! the gateway's REST extension answers the API's creates with 201 Created
//! and a Location (k8s/gateway/rest-extension.yaml). The create paths come
//! from the same descriptor set the extension is rendered from, and so do
//! the messages REST bodies hold, which the extension checks strictly: their
//! definitions get `additionalProperties: false`.

/// The success response protoc-gen-openapiv2 writes for every method.
const GENERATED_OK: &str = "        \"200\":\n          description: A successful response.\n";

/// Turns the generated 200 of `POST <path>` into a 201 with a Location
/// header, for every path of `create_paths`. Fails when the generated text
/// is not shaped as expected, rather than leave a create documented as 200.
pub fn created_responses(spec: &str, create_paths: &[String]) -> Result<String, String> {
    let mut spec = spec.to_owned();
    for path in create_paths {
        let key = format!("\n  {path}:\n");
        let path_body = spec
            .find(&key)
            .map(|i| i + key.len())
            .ok_or_else(|| format!("openapi: no path {path}"))?;
        let path_end = block_end(&spec, path_body, 2);
        let post = "\n    post:\n";
        let post_body = spec[path_body - 1..path_end]
            .find(post)
            .map(|i| path_body - 1 + i + post.len())
            .ok_or_else(|| format!("openapi: no POST {path}"))?;
        let post_end = block_end(&spec, post_body, 4);
        let ok = spec[post_body..post_end]
            .find(GENERATED_OK)
            .map(|i| post_body + i)
            .ok_or_else(|| format!("openapi: POST {path} has no generated 200"))?;
        let created = format!(
            "        \"201\":\n          \
             description: Created. Location is the new resource's path.\n          \
             headers:\n            Location:\n              \
             description: '{path}/{{id}} of the created resource'\n              \
             type: string\n"
        );
        spec.replace_range(ok..ok + GENERATED_OK.len(), &created);
    }
    Ok(spec)
}

/// Marks each definition in `definitions` (protoc-gen-openapiv2's names,
/// e.g. `v1Customer`) `additionalProperties: false`: the gateway answers 400
/// for an unknown field in a REST body. Fails when one is missing.
pub fn closed_definitions(spec: &str, definitions: &[String]) -> Result<String, String> {
    let mut spec = spec.to_owned();
    for name in definitions {
        let key = format!("\n  {name}:\n    type: object\n");
        let at = spec
            .find(&key)
            .map(|i| i + key.len())
            .ok_or_else(|| format!("openapi: no object definition {name}"))?;
        spec.insert_str(at, "    additionalProperties: false\n");
    }
    Ok(spec)
}

/// protoc-gen-openapiv2's definition name of a message (its default naming:
/// the last package component, then the message), e.g. `customer.v1.Customer`
/// is `v1Customer`.
pub fn definition_name(message: &str) -> String {
    let mut parts = message.rsplit('.');
    let name = parts.next().unwrap_or_default();
    format!("{}{name}", parts.next().unwrap_or_default())
}

/// Where the YAML block whose body starts at `from` ends: the first
/// non-blank line indented by at most `indent` spaces, or the end.
fn block_end(spec: &str, from: usize, indent: usize) -> usize {
    let mut offset = from;
    for line in spec[from..].split_inclusive('\n') {
        let depth = line.len() - line.trim_start_matches(' ').len();
        if !line.trim().is_empty() && depth <= indent {
            return offset;
        }
        offset += line.len();
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"paths:
  /customers:
    get:
      operationId: CustomerService_ListCustomers
      responses:
        "200":
          description: A successful response.
          schema:
            $ref: '#/definitions/v1ListCustomersResponse'
    post:
      operationId: CustomerService_CreateCustomer
      responses:
        "200":
          description: A successful response.
          schema:
            $ref: '#/definitions/v1Customer'
        "400":
          description: bad
  /customers/{id}:
    get:
      responses:
        "200":
          description: A successful response.
definitions:
  v1Customer:
    type: object
"#;

    #[test]
    fn the_create_becomes_201_with_a_location_and_nothing_else_changes() {
        let out = created_responses(SPEC, &["/customers".to_owned()]).unwrap();
        let expected = SPEC.replacen(
            "        \"200\":\n          description: A successful response.\n          schema:\n            $ref: '#/definitions/v1Customer'",
            "        \"201\":\n          description: Created. Location is the new resource's path.\n          headers:\n            Location:\n              description: '/customers/{id} of the created resource'\n              type: string\n          schema:\n            $ref: '#/definitions/v1Customer'",
            1,
        );
        assert_ne!(expected, SPEC);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_missing_path_or_post_fails() {
        assert!(created_responses(SPEC, &["/products".to_owned()]).is_err());
        assert!(created_responses(SPEC, &["/customers/{id}".to_owned()]).is_err());
        let no_ok = SPEC.replace(
            "    post:\n      operationId: CustomerService_CreateCustomer\n      responses:\n        \"200\"",
            "    post:\n      operationId: CustomerService_CreateCustomer\n      responses:\n        \"202\"",
        );
        assert!(created_responses(&no_ok, &["/customers".to_owned()]).is_err());
    }

    #[test]
    fn body_definitions_are_closed_and_a_missing_one_fails() {
        let out = closed_definitions(SPEC, &["v1Customer".to_owned()]).unwrap();
        assert!(
            out.ends_with("  v1Customer:\n    type: object\n    additionalProperties: false\n"),
            "{out}"
        );
        assert!(closed_definitions(SPEC, &["v1Product".to_owned()]).is_err());
    }

    #[test]
    fn definition_names_follow_the_generator() {
        assert_eq!(definition_name("customer.v1.Customer"), "v1Customer");
        assert_eq!(definition_name("product.v1.Product"), "v1Product");
    }
}
