//! `meta.k8s.io/v1` Table responses, what `kubectl get` prints: the NAME
//! column, the resource's printer columns, server-formatted ages.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::age::age;
use super::resources::{Printer, ResourceDef};

/// Column definitions, NAME first.
pub fn columns(def: &ResourceDef) -> Vec<Value> {
    let name = json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0});
    match &def.printer {
        Printer::Columns(cols) => std::iter::once(name)
            .chain(cols.iter().map(|c| {
                json!({
                    "name": c["name"],
                    "type": c["type"],
                    "format": c.get("format").cloned().unwrap_or(json!("")),
                    "description": c.get("description").cloned().unwrap_or(json!("")),
                    "priority": c.get("priority").cloned().unwrap_or(json!(0)),
                })
            }))
            .collect(),
        Printer::Pods => std::iter::once(name)
            .chain(super::pods::columns())
            .collect(),
        Printer::Events => [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ]
        .iter()
        .map(|(n, p)| json!({"name": n, "type": "string", "format": "", "description": "", "priority": p}))
        .collect(),
    }
}

fn event_cells(e: &Value, now: Timestamp) -> Vec<Value> {
    let str_at = |p: &str| {
        e.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let first = e
        .get("firstTimestamp")
        .filter(|v| v.is_string())
        .or_else(|| e.get("eventTime").filter(|v| v.is_string()))
        .or_else(|| e.pointer("/metadata/creationTimestamp"));
    let last = e
        .get("lastTimestamp")
        .filter(|v| v.is_string())
        .or_else(|| e.get("eventTime").filter(|v| v.is_string()))
        .or(first);
    let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
    let last_seen = match (age(last, now), count) {
        (Value::String(l), c) if c > 1 => match age(first, now) {
            Value::String(f) => format!("{l} (x{c} over {f})"),
            _ => l,
        },
        (Value::String(l), _) => l,
        _ => String::new(),
    };
    let source = {
        let c = str_at("/source/component");
        let c = if c.is_empty() {
            str_at("/reportingComponent")
        } else {
            c
        };
        let h = str_at("/source/host");
        if h.is_empty() { c } else { format!("{c}, {h}") }
    };
    vec![
        json!(last_seen),
        json!(str_at("/type")),
        json!(str_at("/reason")),
        json!(format!(
            "{}/{}",
            str_at("/involvedObject/kind").to_lowercase(),
            str_at("/involvedObject/name")
        )),
        json!(str_at("/involvedObject/fieldPath")),
        json!(source),
        json!(str_at("/message")),
        age(first, now),
        json!(count),
        json!(str_at("/metadata/name")),
    ]
}

/// How one printer column finds its cell.
enum Cell {
    /// A JSON pointer and the column's type.
    Path(String, Option<String>),
}

/// Builds rows for one resource, with its columns' paths worked out once.
struct Rows<'d> {
    def: &'d ResourceDef,
    cells: Vec<Cell>,
    now: Timestamp,
}

impl<'d> Rows<'d> {
    fn new(def: &'d ResourceDef) -> Self {
        let cells = match &def.printer {
            Printer::Columns(cols) => cols
                .iter()
                .map(|c| {
                    let path = c["jsonPath"].as_str().unwrap_or("").replace('.', "/");
                    Cell::Path(path, c["type"].as_str().map(str::to_owned))
                })
                .collect(),
            Printer::Events | Printer::Pods => Vec::new(),
        };
        Self {
            def,
            cells,
            now: Timestamp::now(),
        }
    }

    fn cells(&self, object: &Value) -> Vec<Value> {
        match self.def.printer {
            Printer::Events => return event_cells(object, self.now),
            Printer::Pods => return super::pods::cells(object, self.now),
            Printer::Columns(_) => {}
        }
        let mut out = Vec::with_capacity(self.cells.len() + 1);
        out.push(
            object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null),
        );
        for Cell::Path(path, kind) in &self.cells {
            out.push(match (kind.as_deref(), object.pointer(path)) {
                (_, None | Some(Value::Null)) => Value::Null,
                (Some("date"), v) => age(v, self.now),
                (Some("string"), Some(Value::String(s))) => Value::String(s.clone()),
                (Some("string"), Some(other)) => Value::String(other.to_string()),
                (_, Some(v)) => v.clone(),
            });
        }
        out
    }

    /// Appends one row: its cells and the object's metadata, serialised
    /// straight into `buf` (no intermediate tree).
    fn write(&self, buf: &mut Vec<u8>, object: &Value) {
        buf.extend_from_slice(b"{\"cells\":");
        // Serialising plain values into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, &self.cells(object));
        buf.extend_from_slice(b",\"object\":");
        write_partial_metadata(buf, object);
        buf.push(b'}');
    }
}

/// Appends `PartialObjectMetadata` of the object to `buf`.
fn write_partial_metadata(buf: &mut Vec<u8>, object: &Value) {
    buf.extend_from_slice(
        b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":",
    );
    let _ = serde_json::to_writer(&mut *buf, object.get("metadata").unwrap_or(&Value::Null));
    buf.push(b'}');
}

/// The row object: `PartialObjectMetadata` of the object.
pub fn partial_metadata(object: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    write_partial_metadata(&mut buf, object);
    buf
}

/// A Table of `objects`, serialised.
pub fn table<'a>(
    def: &ResourceDef,
    objects: impl Iterator<Item = &'a Value>,
    list_meta: &Value,
) -> Vec<u8> {
    let rows = Rows::new(def);
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
    let _ = serde_json::to_writer(&mut buf, list_meta);
    buf.extend_from_slice(b",\"columnDefinitions\":");
    let _ = serde_json::to_writer(&mut buf, &columns(def));
    buf.extend_from_slice(b",\"rows\":[");
    for (i, object) in objects.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        rows.write(&mut buf, object);
    }
    buf.extend_from_slice(b"]}");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::apiserver::resources::find;

    #[test]
    fn gameserver_rows_follow_okg_columns() {
        let gs = find("game.kruise.io", "v1alpha1", "gameservers").unwrap();
        let created = Timestamp::now() - jiff::SignedDuration::from_secs(27);
        let object = json!({"metadata": {"name": "minecraft-0", "creationTimestamp": created.to_string()},
            "spec": {"opsState": "Allocated"},
            "status": {"currentState": "Ready", "deletionPriority": 0, "updatePriority": 0}});
        let t: Value = serde_json::from_slice(&table(
            gs,
            std::iter::once(&object),
            &json!({"resourceVersion": "5"}),
        ))
        .unwrap();
        let headers: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(headers, ["Name", "STATE", "OPSSTATE", "DP", "UP", "AGE"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            cells,
            &json!(["minecraft-0", "Ready", "Allocated", "0", "0", "27s"])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
