//! What a projection is: a pure function from an event to the SQL changes it makes to the
//! projection's tables (of a given version), guarded by stream versions so that applying
//! an event twice changes nothing.

use tokio_postgres::types::ToSql;

use crate::event::ProjectedEvent;

/// One parameterized statement.
pub struct SqlChange {
    pub sql: String,
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl SqlChange {
    pub fn new(sql: String, params: Vec<Box<dyn ToSql + Sync + Send>>) -> Self {
        SqlChange { sql, params }
    }

    /// The parameters as the driver takes them.
    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

impl std::fmt::Debug for SqlChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlChange")
            .field("sql", &self.sql)
            .field("params", &self.params.len())
            .finish()
    }
}

/// A read model built from events.
pub trait Projection: Send + Sync {
    /// Its name, as in `read_model.projections` and the view it is served through.
    fn name(&self) -> &'static str;

    /// The tables version `version` of the projection owns (qualified), first the one
    /// its view selects from.
    fn tables(&self, version: i32) -> Vec<String>;

    /// The changes `event` makes to the tables of `version`. Must be idempotent per
    /// stream version: a replayed event changes nothing.
    fn changes(&self, version: i32, event: &ProjectedEvent) -> Vec<SqlChange>;
}

/// `read_model.{table}_v{version}`.
pub fn table(name: &str, version: i32) -> String {
    format!("{}.{name}_v{version}", readmodel::SCHEMA)
}

/// Boxes a parameter.
pub fn p<T: ToSql + Sync + Send + 'static>(value: T) -> Box<dyn ToSql + Sync + Send> {
    Box::new(value)
}

/// An order's lines as the read models store them:
/// `[{"product_id", "quantity", "unit_price_cents"}]`.
pub fn lines_json(lines: &domain::PricedLines) -> serde_json::Value {
    lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "product_id": l.product_id,
                "quantity": l.quantity.get(),
                "unit_price_cents": l.unit_price_cents.get(),
            })
        })
        .collect()
}
