//! kube-apiserver's limits on an object's labels and annotations, checked on
//! every create and update (status and scale writes included), with its
//! messages. Ported from k8s.io/apimachinery v0.32 (the version `/version`
//! reports): `pkg/api/validation/objectmeta.go` (`ValidateAnnotations`,
//! `TotalAnnotationSizeLimitB`, called again by `ValidateObjectMetaUpdate`),
//! `pkg/apis/meta/v1/validation/validation.go` (`ValidateLabels`,
//! `ValidateLabelName`) and `pkg/util/validation/validation.go`
//! (`IsQualifiedName`, `IsValidLabelValue`, `IsDNS1123Subdomain` and their
//! error strings).

use serde_json::{Map, Value};

use super::status::FieldError;
use crate::api::names::{is_dns1123_subdomain, is_qualified_name_part};

/// `TotalAnnotationSizeLimitB`: all annotations of one object together,
/// counting `len(key) + len(value)` in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * 1024;
/// `LabelValueMaxLength`, and `qualifiedNameMaxLength` for a key's name part.
pub const LABEL_MAX_LENGTH: usize = 63;
/// `DNS1123SubdomainMaxLength`, for a key's prefix.
const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// `MaxLenError`.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let quoted: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        quoted.join(" or ")
    )
}

/// `IsDNS1123Subdomain`.
fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !is_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsQualifiedName`: `[prefix/]name`, the prefix a DNS-1123 subdomain,
/// the name at most 63 characters.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > LABEL_MAX_LENGTH {
        errs.push(format!("name part {}", max_len_error(LABEL_MAX_LENGTH)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`: empty, or a qualified name part of at most 63
/// characters.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_MAX_LENGTH {
        errs.push(max_len_error(LABEL_MAX_LENGTH));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `ValidateLabels` and `ValidateAnnotations` on an object's `metadata`
/// (values that are not strings are reported by the schema check). Every
/// error names `metadata.labels` or `metadata.annotations`, as upstream's.
pub fn check(meta: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(Value::Object(labels)) = meta.get("labels") {
        for (k, v) in labels {
            for msg in qualified_name_errors(k) {
                errors.push(FieldError::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    &msg,
                ));
            }
            if let Some(v) = v.as_str() {
                for msg in label_value_errors(v) {
                    errors.push(FieldError::invalid(
                        "metadata.labels",
                        &Value::String(v.to_owned()),
                        &msg,
                    ));
                }
            }
        }
    }
    if let Some(Value::Object(annotations)) = meta.get("annotations") {
        let mut total = 0usize;
        for (k, v) in annotations {
            // A qualified name, except that case does not matter.
            for msg in qualified_name_errors(&k.to_lowercase()) {
                errors.push(FieldError::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    &msg,
                ));
            }
            total = total
                .saturating_add(k.len())
                .saturating_add(v.as_str().map_or(0, str::len));
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
            errors.push(FieldError::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE_LIMIT_B,
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn annotations_up_to_256_kib_together_pass_one_byte_more_fails() {
        // key "a" (1 byte) + "b" key (1 byte) + values: exactly the limit.
        let at_limit = meta(json!({"annotations": {
            "a": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B - 2 - 10),
            "b": "y".repeat(10),
        }}));
        assert_eq!(check(&at_limit), Vec::new());
        let over = meta(json!({"annotations": {
            "a": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B - 2 - 10),
            "b": "y".repeat(11),
        }}));
        let errors = check(&over);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].full(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(errors[0].reason, "FieldValueTooLong");
    }

    #[test]
    fn qualified_names_follow_apimachinery() {
        for ok in [
            "a",
            "game.kruise.io/owner-gss",
            "gameops.io/lease",
            "A_b.c-D",
            "kubectl.kubernetes.io/last-applied-configuration",
        ] {
            assert_eq!(qualified_name_errors(ok), Vec::<String>::new(), "{ok}");
        }
        assert_eq!(
            qualified_name_errors("-bad"),
            [
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert_eq!(
            qualified_name_errors("/x"),
            ["prefix part must be non-empty"]
        );
        let empty_name = qualified_name_errors("x/");
        assert_eq!(empty_name.len(), 2, "{empty_name:?}");
        assert_eq!(empty_name[0], "name part must be non-empty");
        assert!(empty_name[1].starts_with("name part must consist of"));
        assert_eq!(
            qualified_name_errors(&"n".repeat(64)),
            ["name part must be no more than 63 characters"]
        );
        assert!(qualified_name_errors("a/b/c")[0].starts_with("a qualified name must consist"));
        assert!(qualified_name_errors("Example.com/x")[0].starts_with(
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"
        ));
    }

    #[test]
    fn label_values_are_at_most_63_qualified_characters() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors(&"v".repeat(63)).is_empty());
        assert_eq!(
            label_value_errors(&"v".repeat(64)),
            ["must be no more than 63 characters"]
        );
        assert_eq!(label_value_errors("a b").len(), 1);
        assert!(label_value_errors("a b")[0].starts_with("a valid label must be an empty string"));
    }

    #[test]
    fn labels_and_annotation_keys_are_reported_at_the_map() {
        let m = meta(json!({
            "labels": {"ok": "fine", "bad key": "x", "long": "v".repeat(64)},
            "annotations": {"Upper.Case/Key": "fine", "no spaces": "x"},
        }));
        let errors: Vec<String> = check(&m).iter().map(FieldError::full).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("metadata.labels: Invalid value: \"bad key\": name part"));
        assert!(errors[1].starts_with("metadata.labels: Invalid value: \"vvvv"));
        assert!(errors[1].ends_with("must be no more than 63 characters"));
        assert!(
            errors[2].starts_with("metadata.annotations: Invalid value: \"no spaces\": name part")
        );
    }
}
