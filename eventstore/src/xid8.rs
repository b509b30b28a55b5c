//! The Postgres `xid8` type (a 64-bit full transaction id) for tokio-postgres.

use std::error::Error;

use postgres_types::private::BytesMut;
use postgres_types::{accepts, to_sql_checked, FromSql, IsNull, ToSql, Type};

/// A full transaction id, as stored in `events.transaction_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Xid8(pub u64);

impl<'a> FromSql<'a> for Xid8 {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let bytes: [u8; 8] = raw
            .try_into()
            .map_err(|_| format!("xid8 must be 8 bytes, got {}", raw.len()))?;
        Ok(Xid8(u64::from_be_bytes(bytes)))
    }

    accepts!(XID8);
}

impl ToSql for Xid8 {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(&self.0.to_be_bytes());
        Ok(IsNull::No)
    }

    accepts!(XID8);
    to_sql_checked!();
}
