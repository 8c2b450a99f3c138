//! AIP-158 pagination: page-size rules and opaque, integrity-checked page tokens.
//!
//! A token is `base64url(version | mac | payload)` where the payload holds the
//! last id returned and the filter the listing was made with, and `mac` is a
//! truncated HMAC-SHA256 over the version, the token's scope (the list method)
//! and the payload. Hand-edited tokens, tokens of another list method and
//! tokens used with a different filter are rejected. Tokens are opaque, not
//! secret: the key only protects integrity. Every replica of a service must
//! hold the same key ([`PageTokenKey`], `--page-token-key-file`), so a token
//! from one replica works on another behind the gateway; without one, a
//! built-in development key is used (fine for one machine, not for a
//! deployment: anyone can read it here and forge tokens).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use clap::Args;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::validate::Violations;

/// Page size used when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Larger page sizes are clamped to this.
pub const MAX_PAGE_SIZE: usize = 1000;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
/// The key when none is configured: the local stack and tests need nothing.
const DEVELOPMENT_KEY: &[u8] = b"envoy-poc page token v1";
/// Shortest key accepted from a file: HMAC-SHA256's output size, as RFC 2104
/// recommends (a shorter key weakens the MAC).
pub const MIN_KEY_BYTES: usize = 32;

/// The HMAC key page tokens are signed with. `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PageTokenKey(Option<Arc<[u8]>>);

/// Why a configured page-token key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PageTokenKeyError {
    #[error("cannot read the page-token key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the page-token key in {path} has {len} bytes; at least {MIN_KEY_BYTES} are needed \
         (e.g. `openssl rand -hex 32`)"
    )]
    TooShort { path: PathBuf, len: usize },
}

impl PageTokenKey {
    /// The built-in development key (also the `Default`).
    pub const fn development() -> Self {
        Self(None)
    }

    /// A key from its bytes; at least [`MIN_KEY_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= MIN_KEY_BYTES).then(|| Self(Some(Arc::from(bytes))))
    }

    /// The key in the file at `path`: its bytes without trailing whitespace,
    /// so a file written by `echo` or an editor gives the same key as one
    /// without the final newline.
    pub fn from_file(path: &Path) -> Result<Self, PageTokenKeyError> {
        let bytes = std::fs::read(path).map_err(|source| PageTokenKeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let key = bytes.trim_ascii_end();
        Self::from_bytes(key).ok_or_else(|| PageTokenKeyError::TooShort {
            path: path.to_path_buf(),
            len: key.len(),
        })
    }

    /// Whether this is the built-in development key.
    pub fn is_development(&self) -> bool {
        self.0.is_none()
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(DEVELOPMENT_KEY)
    }
}

impl fmt::Debug for PageTokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_development() {
            f.write_str("PageTokenKey(development)")
        } else {
            f.write_str("PageTokenKey(<redacted>)")
        }
    }
}

/// The page-token flag of a service binary (with the runtime's
/// `PREFIX_PAGE_TOKEN_KEY_FILE` environment fallback).
#[derive(Debug, Clone, Default, Args)]
pub struct PageTokenArgs {
    /// File holding the key page tokens are signed with (at least 32 bytes;
    /// trailing whitespace ignored). Every replica needs the same one.
    /// Without it a built-in development key is used.
    #[arg(long, value_name = "PATH")]
    pub page_token_key_file: Option<PathBuf>,
}

impl PageTokenArgs {
    /// The configured key, or the development key without a file.
    pub fn key(&self) -> Result<PageTokenKey, PageTokenKeyError> {
        match &self.page_token_key_file {
            None => Ok(PageTokenKey::development()),
            Some(path) => PageTokenKey::from_file(path),
        }
    }
}

/// What a list request asks for, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items at most.
    pub size: usize,
    /// Resume after this id (exclusive); `None` for the first page.
    pub after: Option<String>,
}

/// Encodes and checks the page tokens of one list method.
#[derive(Debug, Clone)]
pub struct PageTokens {
    scope: &'static str,
    key: PageTokenKey,
}

impl PageTokens {
    /// `scope` names the list method, e.g. `customer.v1.ListCustomers`; tokens
    /// of one scope are invalid in another. Signed with the development key
    /// until [`Self::with_key`].
    pub const fn new(scope: &'static str) -> Self {
        Self {
            scope,
            key: PageTokenKey::development(),
        }
    }

    /// The same tokens signed with `key`: tokens of another key are invalid.
    pub fn with_key(self, key: PageTokenKey) -> Self {
        Self { key, ..self }
    }

    fn mac(&self, body: &[u8]) -> Result<Hmac<Sha256>, hmac::digest::InvalidLength> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.bytes())?;
        mac.update(self.scope.as_bytes());
        mac.update(&[0]);
        mac.update(body);
        Ok(mac)
    }

    /// Token that resumes after `last_id` for a listing with `filter`.
    pub fn encode(&self, last_id: &str, filter: &str) -> String {
        let mut body = vec![VERSION];
        let id_len = u32::try_from(last_id.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&id_len.to_be_bytes());
        body.extend_from_slice(last_id.as_bytes());
        body.extend_from_slice(filter.as_bytes());
        let tag = match self.mac(&body) {
            Ok(mac) => mac.finalize().into_bytes(),
            // HMAC accepts keys of any length.
            Err(_) => unreachable!("HMAC key length"),
        };
        let mut token = Vec::with_capacity(body.len() + MAC_LEN);
        token.push(VERSION);
        token.extend_from_slice(&tag[..MAC_LEN]);
        token.extend_from_slice(&body[1..]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The id to resume after, or `None` for an empty token (first page).
    /// Errors describe why the token is unusable (for the `page_token` field).
    pub fn decode(&self, token: &str, filter: &str) -> Result<Option<String>, String> {
        const INVALID: &str = "is not a page token returned by this method";
        if token.is_empty() {
            return Ok(None);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| INVALID.to_owned())?;
        if raw.len() < 1 + MAC_LEN + 4 || raw[0] != VERSION {
            return Err(INVALID.into());
        }
        let (tag, payload) = raw[1..].split_at(MAC_LEN);
        let mut body = vec![VERSION];
        body.extend_from_slice(payload);
        let mac = self.mac(&body).map_err(|_| INVALID.to_owned())?;
        mac.verify_truncated_left(tag)
            .map_err(|_| INVALID.to_owned())?;

        let (len, rest) = payload.split_at(4);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if rest.len() < len {
            return Err(INVALID.into());
        }
        let (id, token_filter) = rest.split_at(len);
        if token_filter != filter.as_bytes() {
            return Err(
                "was issued for a different filter; repeat the same filter or start over \
                        without a page_token"
                    .into(),
            );
        }
        let id = String::from_utf8(id.to_vec()).map_err(|_| INVALID.to_owned())?;
        Ok(Some(id))
    }

    /// Validates `page_size` and `page_token` together, collecting both
    /// violations (fields `page_size` and `page_token`).
    pub fn request(
        &self,
        page_size: i32,
        page_token: &str,
        filter: &str,
    ) -> Result<PageRequest, Violations> {
        let mut violations = Violations::new();
        let size = match page_size_rule(page_size) {
            Ok(size) => size,
            Err(description) => {
                violations.add("page_size", description);
                0
            }
        };
        let after = match self.decode(page_token, filter) {
            Ok(after) => after,
            Err(description) => {
                violations.add("page_token", description);
                None
            }
        };
        violations
            .into_result()
            .map(|()| PageRequest { size, after })
    }

    /// `next_page_token` for a page whose last item is `last_id`, or empty
    /// when there are no more items.
    pub fn next(&self, has_more: bool, last_id: Option<&str>, filter: &str) -> String {
        match (has_more, last_id) {
            (true, Some(id)) => self.encode(id, filter),
            _ => String::new(),
        }
    }
}

/// 0 → [`DEFAULT_PAGE_SIZE`], above [`MAX_PAGE_SIZE`] → clamped, negative → error.
pub fn page_size_rule(page_size: i32) -> Result<usize, String> {
    match usize::try_from(page_size) {
        Err(_) => Err("must not be negative".into()),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKENS: PageTokens = PageTokens::new("demo.v1.ListThings");

    #[test]
    fn page_size_rules() {
        assert_eq!(page_size_rule(0), Ok(50));
        assert_eq!(page_size_rule(1), Ok(1));
        assert_eq!(page_size_rule(1000), Ok(1000));
        assert_eq!(page_size_rule(1001), Ok(1000));
        assert_eq!(page_size_rule(i32::MAX), Ok(1000));
        assert!(page_size_rule(-1).is_err());
    }

    #[test]
    fn round_trip() {
        let token = TOKENS.encode("thg_000042", "books");
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(
            TOKENS.decode(&token, "books"),
            Ok(Some("thg_000042".into()))
        );
        assert_eq!(TOKENS.decode("", "books"), Ok(None));
    }

    #[test]
    fn tampered_token_is_rejected() {
        let token = TOKENS.encode("thg_000042", "");
        let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        // Point the token at another id, keeping the old MAC.
        let last = raw.len() - 1;
        raw[last] = b'9';
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert!(TOKENS.decode(&forged, "").is_err());
        // Every single-byte flip is caught.
        for i in 0..raw.len() {
            let mut flipped = URL_SAFE_NO_PAD.decode(&token).expect("base64");
            flipped[i] ^= 0x01;
            assert!(
                TOKENS
                    .decode(&URL_SAFE_NO_PAD.encode(&flipped), "")
                    .is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for garbage in ["x", "not a token!", "AAAA", &"A".repeat(100)] {
            assert!(TOKENS.decode(garbage, "").is_err(), "{garbage}");
        }
    }

    #[test]
    fn token_for_another_filter_or_method_is_rejected() {
        let token = TOKENS.encode("thg_000042", "books");
        let err = TOKENS.decode(&token, "games").expect_err("other filter");
        assert!(err.contains("different filter"), "{err}");
        assert!(TOKENS.decode(&token, "").is_err());
        assert!(
            PageTokens::new("other.v1.List")
                .decode(&token, "books")
                .is_err()
        );
    }

    #[test]
    fn request_collects_both_violations() {
        let err = TOKENS.request(-1, "garbage", "").expect_err("invalid");
        assert_eq!(err.fields(), ["page_size", "page_token"]);
        let ok = TOKENS.request(0, "", "").expect("valid");
        assert_eq!(
            ok,
            PageRequest {
                size: 50,
                after: None
            }
        );
    }

    #[test]
    fn a_token_of_another_key_is_rejected() {
        let a = PageTokenKey::from_bytes(&[b'a'; 32]).expect("32 bytes");
        let b = PageTokenKey::from_bytes(&[b'b'; 32]).expect("32 bytes");
        let token = TOKENS.with_key(a.clone()).encode("thg_000042", "");
        assert_eq!(
            TOKENS.with_key(a).decode(&token, ""),
            Ok(Some("thg_000042".into())),
            "same key, another instance"
        );
        assert!(TOKENS.with_key(b).decode(&token, "").is_err());
        assert!(TOKENS.decode(&token, "").is_err(), "development key");
    }

    #[test]
    fn keys_come_from_files_trimmed_and_long_enough() {
        let dir = std::env::temp_dir().join(format!("page-token-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("key");
        std::fs::write(&file, format!("{}\n", "k".repeat(32))).expect("write");
        let key = PageTokenKey::from_file(&file).expect("key");
        assert_eq!(
            key,
            PageTokenKey::from_bytes(&[b'k'; 32]).expect("32 bytes")
        );
        assert_eq!(format!("{key:?}"), "PageTokenKey(<redacted>)");

        std::fs::write(&file, "short\n").expect("write");
        let err = PageTokenKey::from_file(&file).expect_err("too short");
        assert!(
            matches!(err, PageTokenKeyError::TooShort { len: 5, .. }),
            "{err}"
        );
        let missing = PageTokenKey::from_file(&dir.join("missing")).expect_err("missing");
        assert!(
            matches!(missing, PageTokenKeyError::Read { .. }),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");

        let args = PageTokenArgs::default();
        assert!(args.key().expect("development key").is_development());
    }

    #[test]
    fn next_token_is_empty_on_the_last_page() {
        assert_eq!(TOKENS.next(false, Some("a"), ""), "");
        assert_eq!(TOKENS.next(true, None, ""), "");
        assert!(!TOKENS.next(true, Some("a"), "").is_empty());
    }
}
