//! A batch's result lines (SPEC §7): one per created, failed and rejected row, in row order
//! within the batch. A created line is written field by field — every sent customer gets
//! one, and building it as a JSON value and printing that cost more CPU than the request
//! itself; the customer in it is a copy of the request's bytes, never serialized again.

use serde_json::json;

use super::batches::BatchUnit;
use super::checkpoint::Counts;
use super::ledger::Materialized;
use crate::run_dir::events::{CreatedRow, FailedRow};
use crate::source::Record;
use crate::sync::SyncTag;

/// A batch's lines for the result files.
pub fn materialize(
    unit: &BatchUnit,
    created: Vec<CreatedRow>,
    failed: Vec<FailedRow>,
) -> Materialized {
    let mut created = created;
    created.sort_by_key(|c| c.row);
    let mut failed = failed;
    failed.sort_by_key(|f| f.row);
    let counts = Counts {
        rows: unit.rows(),
        created: created.len() as u64,
        failed: failed.len() as u64,
        rejected: unit.rejected.len() as u64,
        skipped: unit.skipped,
        unchanged: unit.unchanged,
    };
    // A customer's place in the batch, found by its row (`customer_rows` ascends).
    let index_of = |row: u64| unit.customer_rows.binary_search(&row).ok();
    // Each line is its customer's JSON and ~110 bytes around it (~230 with change
    // detection's key and hash): room for them all at once, so the batch's lines are never
    // copied to a bigger buffer.
    let around = if unit.tags.iter().any(Option::is_some) {
        256
    } else {
        128
    };
    let mut created_lines = Vec::with_capacity(unit.customers.bytes() + created.len() * around);
    for c in &created {
        // The customer's place in the batch, looked up once for all it carries.
        let at = index_of(c.row);
        let record = at.and_then(|i| unit.records.get(i));
        write_created_line(
            &mut created_lines,
            c,
            record.and_then(Record::line_number),
            // What was sent, as it was sent: `cdpjob verify` compares the stored
            // customer with it, whatever has become of the source since.
            at.and_then(|i| unit.customers.get(i)),
            // What the sync state records once the run finishes (SPEC §7).
            at.and_then(|i| unit.tags.get(i)).and_then(Option::as_ref),
        );
    }
    let mut failed_lines = Vec::new();
    for f in &failed {
        let record = index_of(f.row).and_then(|i| unit.records.get(i));
        let mut v = beside_row(f.row, record, f);
        if let Some(record) = record {
            record.attach_to(&mut v);
        }
        push_line(&mut failed_lines, &v);
    }
    let mut rejected_lines = Vec::new();
    for r in &unit.rejected {
        let mut v = beside_row(r.row, Some(&r.record), json!({}));
        v["errors"] = r
            .errors
            .iter()
            .map(|e| json!({"field": e.field, "rule": e.rule, "message": e.message}))
            .collect();
        r.record.attach_to(&mut v);
        push_line(&mut rejected_lines, &v);
    }
    Materialized {
        seq: unit.seq,
        created: created_lines,
        failed: failed_lines,
        rejected: rejected_lines,
        counts,
    }
}

fn push_line(out: &mut Vec<u8>, v: &serde_json::Value) {
    serde_json::to_writer(&mut *out, v).expect("a JSON value serializes");
    out.push(b'\n');
}

/// A result line's object: `row`, then `line` — the physical line the record starts on, for
/// sources that have lines (SPEC §12 R13) —, then the fields of `rest`.
fn beside_row(row: u64, record: Option<&Record>, rest: impl serde::Serialize) -> serde_json::Value {
    let mut v = json!({ "row": row });
    if let Some(line) = record.and_then(Record::line_number) {
        v["line"] = line.into();
    }
    if let serde_json::Value::Object(fields) = serde_json::to_value(rest).expect("serializes") {
        for (k, value) in fields {
            if k != "row" {
                v[k.as_str()] = value;
            }
        }
    }
    v
}

/// `{"row","line"?,"customer_id","whats_app_phone"?,"customer"?,"sync_key"?,"sync_hash"?}`
/// and a newline: the keys and their order of the other lines' [`beside_row`].
fn write_created_line(
    out: &mut Vec<u8>,
    c: &CreatedRow,
    line: Option<u64>,
    customer: Option<&[u8]>,
    tag: Option<&SyncTag>,
) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b"{\"row\":");
    out.extend_from_slice(n.format(c.row).as_bytes());
    if let Some(line) = line {
        out.extend_from_slice(b",\"line\":");
        out.extend_from_slice(n.format(line).as_bytes());
    }
    out.extend_from_slice(b",\"customer_id\":");
    out.extend_from_slice(n.format(c.customer_id).as_bytes());
    if let Some(phone) = &c.whats_app_phone {
        out.extend_from_slice(b",\"whats_app_phone\":");
        crate::customer_json::write_str(phone, out);
    }
    if let Some(customer) = customer {
        out.extend_from_slice(b",\"customer\":");
        out.extend_from_slice(customer);
    }
    if let Some(t) = tag {
        out.extend_from_slice(b",\"sync_key\":");
        crate::customer_json::write_str(&t.key, out);
        out.extend_from_slice(b",\"sync_hash\":\"");
        let mut hex = [0u8; 64];
        hex::encode_to_slice(t.hash, &mut hex).expect("64 hex digits for 32 bytes");
        out.extend_from_slice(&hex);
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::SerializedCustomers;
    use crate::customer::{Customer, Field};

    /// The created line as it was built before it was written field by field: a JSON value
    /// with the same keys in the same order.
    fn as_a_value(
        c: &CreatedRow,
        line: Option<u64>,
        customer: Option<&Customer>,
        tag: Option<&SyncTag>,
    ) -> String {
        let mut v = json!({ "row": c.row });
        if let Some(line) = line {
            v["line"] = line.into();
        }
        v["customer_id"] = c.customer_id.into();
        if let Some(p) = &c.whats_app_phone {
            v["whats_app_phone"] = p.clone().into();
        }
        if let Some(customer) = customer {
            v["customer"] = serde_json::to_value(customer).unwrap();
        }
        if let Some(t) = tag {
            v["sync_key"] = t.key.clone().into();
            v["sync_hash"] = hex::encode(t.hash).into();
        }
        v.to_string() + "\n"
    }

    #[test]
    fn a_created_line_is_the_json_value_it_was_built_as_before() {
        let customer = Customer::from_rendered([
            (Field::FullName, "Ann \"A\" \\ 张".to_string()),
            (Field::WhatsAppPhone, "8613900000000".to_string()),
            (Field::Gender, "1".to_string()),
            (
                Field::CustomizeField,
                r#"{"customize_1_1":"x\n"}"#.to_string(),
            ),
        ])
        .unwrap();
        let mut serialized = SerializedCustomers::default();
        serialized.push(&customer);
        let tag = SyncTag {
            field: Field::WhatsAppPhone,
            key: "whats_app_phone:8613900000000\"".into(),
            key_digest: 7,
            hash: [0xab; 32],
        };
        for phone in [None, Some("86139\"0000000".to_string())] {
            for line in [None, Some(42)] {
                for with_customer in [false, true] {
                    for tag in [None, Some(&tag)] {
                        let c = CreatedRow {
                            row: 41,
                            customer_id: 2127915426947006464,
                            whats_app_phone: phone.clone(),
                        };
                        let mut out = Vec::new();
                        write_created_line(
                            &mut out,
                            &c,
                            line,
                            with_customer.then(|| serialized.get(0).unwrap()),
                            tag,
                        );
                        assert_eq!(
                            String::from_utf8(out).unwrap(),
                            as_a_value(&c, line, with_customer.then_some(&customer), tag)
                        );
                    }
                }
            }
        }
    }
}
