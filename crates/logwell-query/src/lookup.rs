//! Lookup tables: named CSV tables (a header row, then rows) that the `lookup` command joins
//! events with. Values are text, as CloudWatch compares them: exactly and case-sensitively.

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The most bytes a table's CSV may have (CloudWatch's limit).
pub const MAX_TABLE_BYTES: usize = 10 << 20;

/// One parsed table: its columns, in header order, as one batch of text columns.
#[derive(Debug, Clone)]
pub struct LookupTable {
    pub batch: RecordBatch,
}

impl LookupTable {
    /// Parses CSV text whose first row names the columns.
    pub fn parse(csv_text: &str) -> Result<LookupTable, String> {
        if csv_text.len() > MAX_TABLE_BYTES {
            return Err(format!(
                "The table body is {} bytes; the limit is {MAX_TABLE_BYTES}",
                csv_text.len()
            ));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(csv_text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| format!("The table body is not valid CSV: {e}"))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if header.is_empty() || header.iter().any(|h| h.is_empty()) {
            return Err("The table body needs a header row naming every column".into());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(format!("The header row names column {dup} twice"));
        }
        let mut builders: Vec<StringBuilder> =
            header.iter().map(|_| StringBuilder::new()).collect();
        for record in reader.records() {
            let record = record.map_err(|e| format!("The table body is not valid CSV: {e}"))?;
            for (b, v) in builders.iter_mut().zip(record.iter()) {
                b.append_value(v);
            }
        }
        let schema = Schema::new(
            header
                .iter()
                .map(|h| Field::new(h, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let columns: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| e.to_string())?;
        Ok(LookupTable { batch })
    }

    pub fn columns(&self) -> Vec<String> {
        self.batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// The lookup tables queries can use, by name.
#[derive(Debug, Default)]
pub struct LookupTables {
    tables: RwLock<BTreeMap<String, Arc<LookupTable>>>,
}

impl LookupTables {
    pub fn set(&self, name: &str, table: LookupTable) {
        self.tables
            .write()
            .unwrap()
            .insert(name.to_string(), Arc::new(table));
    }

    pub fn remove(&self, name: &str) {
        self.tables.write().unwrap().remove(name);
    }

    pub fn get(&self, name: &str) -> Option<Arc<LookupTable>> {
        self.tables.read().unwrap().get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn csv_with_a_header_becomes_text_columns() {
        let t = LookupTable::parse("id,name,team\nu1,Ann,core\nu2,\"Bo, Jr\",edge\n").unwrap();
        assert_eq!(t.columns(), vec!["id", "name", "team"]);
        assert_eq!(t.rows(), 2);
        assert_eq!(t.batch.column(1).as_string::<i32>().value(1), "Bo, Jr");
        assert!(LookupTable::parse("id,id\n1,2\n").is_err());
        assert!(LookupTable::parse("id,name\nu1\n").is_err(), "ragged rows");
        assert!(LookupTable::parse("").is_err());
    }
}
