//! The sidecar container as Go's encoding/json reads and writes
//! `core/v1.Container`: the fields `gameops plugin build` knows, each with
//! its Go type (`omitempty`, pointers, quantities), so the container is
//! written back exactly as Argo would.

use serde_json::{Map, Value};

use super::quantity;

/// `spec.sidecar.container` read as Go reads a `core/v1.Container`, as Go
/// would write it back.
pub(super) fn read(raw: &Value) -> Result<Map<String, Value>, String> {
    normalize(CONTAINER, raw, "spec.sidecar.container")
}

/// How one field of a Kubernetes Go type reads and writes.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// `string` without omitempty: always written, `""` when absent.
    Str,
    /// `string,omitempty`.
    OptStr,
    /// `int32`/`int64` without omitempty: always written, 0 when absent.
    Int,
    /// `int32,omitempty`.
    OptInt,
    /// `bool,omitempty`.
    OptBool,
    /// `*string`: written when given, even empty.
    PtrStr,
    /// `*int64`: written when given, even 0.
    PtrInt,
    /// `*bool`: written when given, even false.
    PtrBool,
    /// `[]string,omitempty`.
    Strings,
    /// `ResourceList,omitempty`: quantities, canonicalised.
    Quantities,
    /// `intstr.IntOrString` without omitempty.
    IntOrStr,
    /// `[]T,omitempty` of a struct.
    List(&'static [Field]),
    /// `*T,omitempty` of a struct.
    Ptr(&'static [Field]),
    /// `T,omitempty` of a struct: Go always writes it.
    Struct(&'static [Field]),
}

type Field = (&'static str, Ty);

const CONTAINER: &[Field] = &[
    ("name", Ty::Str),
    ("image", Ty::OptStr),
    ("command", Ty::Strings),
    ("args", Ty::Strings),
    ("workingDir", Ty::OptStr),
    ("ports", Ty::List(CONTAINER_PORT)),
    ("envFrom", Ty::List(ENV_FROM)),
    ("env", Ty::List(ENV_VAR)),
    ("resources", Ty::Struct(RESOURCES)),
    ("restartPolicy", Ty::PtrStr),
    ("volumeMounts", Ty::List(VOLUME_MOUNT)),
    ("livenessProbe", Ty::Ptr(PROBE)),
    ("readinessProbe", Ty::Ptr(PROBE)),
    ("startupProbe", Ty::Ptr(PROBE)),
    ("terminationMessagePath", Ty::OptStr),
    ("terminationMessagePolicy", Ty::OptStr),
    ("imagePullPolicy", Ty::OptStr),
    ("securityContext", Ty::Ptr(SECURITY_CONTEXT)),
    ("stdin", Ty::OptBool),
    ("stdinOnce", Ty::OptBool),
    ("tty", Ty::OptBool),
];
const CONTAINER_PORT: &[Field] = &[
    ("name", Ty::OptStr),
    ("hostPort", Ty::OptInt),
    ("containerPort", Ty::Int),
    ("protocol", Ty::OptStr),
    ("hostIP", Ty::OptStr),
];
const LOCAL_REF: &[Field] = &[("name", Ty::OptStr), ("optional", Ty::PtrBool)];
const ENV_FROM: &[Field] = &[
    ("prefix", Ty::OptStr),
    ("configMapRef", Ty::Ptr(LOCAL_REF)),
    ("secretRef", Ty::Ptr(LOCAL_REF)),
];
const KEY_REF: &[Field] = &[
    ("name", Ty::OptStr),
    ("key", Ty::Str),
    ("optional", Ty::PtrBool),
];
const FIELD_REF: &[Field] = &[("apiVersion", Ty::OptStr), ("fieldPath", Ty::Str)];
const ENV_SOURCE: &[Field] = &[
    ("fieldRef", Ty::Ptr(FIELD_REF)),
    ("configMapKeyRef", Ty::Ptr(KEY_REF)),
    ("secretKeyRef", Ty::Ptr(KEY_REF)),
];
const ENV_VAR: &[Field] = &[
    ("name", Ty::Str),
    ("value", Ty::OptStr),
    ("valueFrom", Ty::Ptr(ENV_SOURCE)),
];
const RESOURCES: &[Field] = &[("limits", Ty::Quantities), ("requests", Ty::Quantities)];
const VOLUME_MOUNT: &[Field] = &[
    ("name", Ty::Str),
    ("readOnly", Ty::OptBool),
    ("mountPath", Ty::Str),
    ("subPath", Ty::OptStr),
    ("subPathExpr", Ty::OptStr),
];
const HTTP_HEADER: &[Field] = &[("name", Ty::Str), ("value", Ty::Str)];
const HTTP_GET: &[Field] = &[
    ("path", Ty::OptStr),
    ("port", Ty::IntOrStr),
    ("host", Ty::OptStr),
    ("scheme", Ty::OptStr),
    ("httpHeaders", Ty::List(HTTP_HEADER)),
];
const TCP_SOCKET: &[Field] = &[("port", Ty::IntOrStr), ("host", Ty::OptStr)];
const EXEC: &[Field] = &[("command", Ty::Strings)];
const GRPC: &[Field] = &[("port", Ty::Int), ("service", Ty::PtrStr)];
const PROBE: &[Field] = &[
    ("exec", Ty::Ptr(EXEC)),
    ("httpGet", Ty::Ptr(HTTP_GET)),
    ("tcpSocket", Ty::Ptr(TCP_SOCKET)),
    ("grpc", Ty::Ptr(GRPC)),
    ("initialDelaySeconds", Ty::OptInt),
    ("timeoutSeconds", Ty::OptInt),
    ("periodSeconds", Ty::OptInt),
    ("successThreshold", Ty::OptInt),
    ("failureThreshold", Ty::OptInt),
    ("terminationGracePeriodSeconds", Ty::PtrInt),
];
const CAPABILITIES: &[Field] = &[("add", Ty::Strings), ("drop", Ty::Strings)];
const PROFILE: &[Field] = &[("type", Ty::Str), ("localhostProfile", Ty::PtrStr)];
const SECURITY_CONTEXT: &[Field] = &[
    ("capabilities", Ty::Ptr(CAPABILITIES)),
    ("privileged", Ty::PtrBool),
    ("runAsUser", Ty::PtrInt),
    ("runAsGroup", Ty::PtrInt),
    ("runAsNonRoot", Ty::PtrBool),
    ("readOnlyRootFilesystem", Ty::PtrBool),
    ("allowPrivilegeEscalation", Ty::PtrBool),
    ("procMount", Ty::PtrStr),
    ("seccompProfile", Ty::Ptr(PROFILE)),
    ("appArmorProfile", Ty::Ptr(PROFILE)),
];

/// Reads `value` as the Go struct `fields` describes and writes it back as
/// Go's encoding/json would.
fn normalize(fields: &[Field], value: &Value, path: &str) -> Result<Map<String, Value>, String> {
    let empty = Map::new();
    let input = match value {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return Err(format!("{path} must be a mapping")),
    };
    if let Some(unknown) = input
        .keys()
        .find(|k| !fields.iter().any(|(name, _)| name == k))
    {
        let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown field {path}.{unknown}: `gameops plugin build` knows {} here (Argo rejects unknown fields; for other Kubernetes fields use `argo executor-plugin build`)",
            known.join(", ")
        ));
    }
    let mut out = Map::new();
    for (name, ty) in fields {
        let given = input.get(*name).filter(|v| !v.is_null());
        let here = format!("{path}.{name}");
        if let Some(v) = field(*ty, given, &here)? {
            out.insert((*name).to_owned(), v);
        }
    }
    Ok(out)
}

fn int(v: &Value, path: &str) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{path} must be a whole number"))
}

fn string(v: &Value, path: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{path} must be a string (quote it)"))
}

fn field(ty: Ty, given: Option<&Value>, path: &str) -> Result<Option<Value>, String> {
    let out = match (ty, given) {
        (Ty::Str, None) => Some(Value::String(String::new())),
        (Ty::Str | Ty::PtrStr, Some(v)) => Some(Value::String(string(v, path)?)),
        (Ty::OptStr, Some(v)) => Some(Value::String(string(v, path)?)).filter(|s| s != ""),
        (Ty::Int, None) => Some(Value::from(0)),
        (Ty::Int | Ty::PtrInt, Some(v)) => Some(Value::from(int(v, path)?)),
        (Ty::OptInt, Some(v)) => Some(Value::from(int(v, path)?)).filter(|n| n != 0),
        (Ty::OptBool | Ty::PtrBool, Some(v)) => {
            let b = v
                .as_bool()
                .ok_or_else(|| format!("{path} must be true or false"))?;
            Some(Value::Bool(b)).filter(|b| matches!(ty, Ty::PtrBool) || *b == Value::Bool(true))
        }
        (Ty::Strings, Some(v)) => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("{path} must be a list of strings"))?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, s)| string(s, &format!("{path}[{i}]")).map(Value::String))
                .collect::<Result<Vec<_>, _>>()?;
            Some(Value::Array(items)).filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        }
        (Ty::Quantities, Some(v)) => {
            let map = object(v, path)?;
            let mut out = Map::new();
            for (k, q) in map {
                let text = match q {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(format!(
                            "{path}.{k} must be a quantity such as 100m or 64Mi"
                        ));
                    }
                };
                let canonical =
                    quantity::canonical(&text).map_err(|e| format!("{path}.{k}: {e}"))?;
                out.insert(k.clone(), Value::String(canonical));
            }
            // Go omits an empty map (Argo's check saw it as given: `validate`
            // looks at the manifest itself).
            Some(Value::Object(out)).filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
        }
        (Ty::IntOrStr, None) => Some(Value::from(0)),
        (Ty::IntOrStr, Some(v)) => match v {
            Value::String(_) => Some(v.clone()),
            Value::Number(_) => Some(Value::from(int(v, path)?)),
            _ => return Err(format!("{path} must be a port number or name")),
        },
        (Ty::List(fields), Some(v)) => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("{path} must be a list"))?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    normalize(fields, item, &format!("{path}[{i}]")).map(Value::Object)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(Value::Array(items)).filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        }
        (Ty::Ptr(fields), Some(v)) => Some(Value::Object(normalize(fields, v, path)?)),
        (Ty::Struct(fields), v) => Some(Value::Object(normalize(
            fields,
            v.unwrap_or(&Value::Null),
            path,
        )?)),
        (_, None) => None,
    };
    Ok(out)
}

/// `v` as a mapping, or why not (`WHAT must be a mapping`).
pub(super) fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what} must be a mapping"))
}
