//! AIP-134 update masks.

use prost_types::FieldMask;

use crate::validate::Violations;

/// Which fields an update replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateMask {
    /// No mask (or an empty one): every field set to a non-default value.
    Implicit,
    /// Exactly these fields, which may thereby be cleared.
    Fields(Vec<&'static str>),
}

impl UpdateMask {
    /// Validates `mask` against the resource's `updatable` fields; the
    /// `output_only` ones (id, timestamps) and unknown paths are violations of
    /// `update_mask.paths`. `*` selects every updatable field.
    pub fn parse(
        mask: Option<&FieldMask>,
        updatable: &[&'static str],
        output_only: &[&str],
    ) -> Result<Self, Violations> {
        let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
        if paths.is_empty() {
            return Ok(Self::Implicit);
        }
        let mut fields = Vec::new();
        let mut violations = Violations::new();
        for path in paths {
            if path == "*" {
                fields.extend_from_slice(updatable);
            } else if let Some(field) = updatable.iter().find(|f| **f == path) {
                fields.push(*field);
            } else if output_only.contains(&path.as_str()) {
                violations.add(
                    "update_mask.paths",
                    format!("\"{path}\" is output only and cannot be updated"),
                );
            } else {
                violations.add(
                    "update_mask.paths",
                    format!("\"{path}\" is not a field of the resource"),
                );
            }
        }
        violations.into_result()?;
        fields.sort_unstable();
        fields.dedup();
        Ok(Self::Fields(fields))
    }

    /// Whether `field` is replaced; `is_set` says whether the request's value
    /// for it is non-default (what counts without a mask).
    pub fn includes(&self, field: &str, is_set: bool) -> bool {
        match self {
            Self::Implicit => is_set,
            Self::Fields(fields) => fields.contains(&field),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATABLE: &[&str] = &["name", "email", "phone"];
    const OUTPUT_ONLY: &[&str] = &["id", "create_time", "update_time"];

    fn mask(paths: &[&str]) -> FieldMask {
        FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn no_mask_means_the_set_fields() {
        for m in [None, Some(mask(&[]))] {
            let parsed = UpdateMask::parse(m.as_ref(), UPDATABLE, OUTPUT_ONLY).expect("valid");
            assert_eq!(parsed, UpdateMask::Implicit);
            assert!(parsed.includes("name", true));
            assert!(!parsed.includes("phone", false));
        }
    }

    #[test]
    fn explicit_mask_includes_exactly_the_listed_fields() {
        let parsed = UpdateMask::parse(Some(&mask(&["phone", "phone"])), UPDATABLE, OUTPUT_ONLY)
            .expect("valid");
        assert_eq!(parsed, UpdateMask::Fields(vec!["phone"]));
        assert!(parsed.includes("phone", false), "listed field is cleared");
        assert!(
            !parsed.includes("name", true),
            "unlisted field is kept even if set"
        );
        let all = UpdateMask::parse(Some(&mask(&["*"])), UPDATABLE, OUTPUT_ONLY).expect("valid");
        assert_eq!(all, UpdateMask::Fields(vec!["email", "name", "phone"]));
    }

    #[test]
    fn unknown_and_output_only_paths_are_violations() {
        let err = UpdateMask::parse(
            Some(&mask(&["name", "nickname", "id", "create_time"])),
            UPDATABLE,
            OUTPUT_ONLY,
        )
        .expect_err("invalid");
        assert_eq!(err.fields(), ["update_mask.paths"; 3]);
        let text = err.to_string();
        assert!(text.contains("\"nickname\" is not a field"), "{text}");
        assert!(text.contains("\"id\" is output only"), "{text}");
    }
}
