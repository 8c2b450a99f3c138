//! `just token USER`: an access token of a test user from the running
//! Keycloak (password = user name, the realm's CLI client).

use serde_json::Value;

pub const KEYCLOAK_URL: &str = "http://127.0.0.1:8180";
pub const CLIENT_ID: &str = "envoy-poc-cli";

/// The token endpoint of `realm`.
pub fn endpoint(realm: &str) -> String {
    format!("{KEYCLOAK_URL}/realms/{realm}/protocol/openid-connect/token")
}

/// The access token in Keycloak's answer, or what it said instead.
pub fn access_token(body: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body}"))?;
    value["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token: {body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_or_keycloaks_error() {
        assert_eq!(
            access_token(r#"{"access_token":"eyJ","expires_in":300}"#).unwrap(),
            "eyJ"
        );
        let err = access_token(r#"{"error":"invalid_grant"}"#).unwrap_err();
        assert!(err.contains("invalid_grant"), "{err}");
        assert!(access_token("<html>").unwrap_err().starts_with("not JSON"));
        assert_eq!(
            endpoint("envoy-poc"),
            "http://127.0.0.1:8180/realms/envoy-poc/protocol/openid-connect/token"
        );
    }
}
