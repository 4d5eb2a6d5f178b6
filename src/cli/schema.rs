//! `rcfleet schema`: the inventory's JSON Schema on stdout, for editors.

use super::write_stdout;
use crate::error::Result;
use crate::inventory::schema;

pub fn run() -> Result<i32> {
    let text = serde_json::to_string_pretty(&schema::json_schema()).expect("the schema serialises");
    write_stdout(format!("{text}\n").as_bytes())
}
