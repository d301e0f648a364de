//! The outbox: own ops sealed into segments exactly once, and objects waiting for a store.
//!
//! A segment is sealed once and its bytes kept (`own_segments`): a retry, or a store added
//! later, gets identical bytes, so every device sees one hash chain per device.

use crate::database::{from_sql_u64, meta_get, meta_set, to_sql_u64};
use crate::identity::{DeviceKeys, VaultKeys};
use crate::oplog::{OP_COLUMNS, op_from_row};
use crate::{Error, Result, Vault, random};
use ferry_format::objects::{SegmentPayload, WireOp};
use ferry_format::seal::ObjectId;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// Most ops in one segment.
pub(crate) const SEGMENT_MAX_OPS: usize = 10_000;
/// Most bytes of values in one segment (before compression).
const SEGMENT_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

impl Vault {
    /// Seals every own op not yet in a segment into new segments. Returns how many were made.
    pub(crate) fn seal_pending_ops(&mut self) -> Result<u64> {
        let device = self.device_id();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sealed_counter = from_sql_u64(meta_get(&tx, "sealed_counter")?)?;
        let op_counter = from_sql_u64(meta_get(&tx, "op_counter")?)?;
        if sealed_counter >= op_counter {
            return Ok(0);
        }
        let keys = VaultKeys::load(&tx)?;
        let device_keys = DeviceKeys::load(&tx)?;
        let sealer = keys.sealer(device, &device_keys);
        let (mut seq, mut prev): (u64, Option<[u8; 32]>) = tx
            .query_row("SELECT seq, hash FROM own_segments ORDER BY seq DESC LIMIT 1", [], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .optional()?
            .map(|(seq, hash)| -> Result<_> {
                let hash: [u8; 32] =
                    hash.as_slice().try_into().map_err(|_| Error::Corrupt("own segment hash".into()))?;
                Ok((from_sql_u64(seq)?, Some(hash)))
            })
            .transpose()?
            .unwrap_or((0, None));

        let mut made = 0;
        {
            let mut select = tx.prepare(&format!(
                "SELECT {OP_COLUMNS} FROM ops WHERE device = ?1 AND counter > ?2 ORDER BY counter"
            ))?;
            let mut rows = select.query(params![&device.as_bytes()[..], to_sql_u64(sealed_counter)?])?;
            let mut batch: Vec<WireOp> = Vec::new();
            let mut batch_bytes = 0;
            let mut last_counter = sealed_counter;
            loop {
                let op = rows.next()?.map(op_from_row).transpose()?;
                let full = batch.len() >= SEGMENT_MAX_OPS || batch_bytes >= SEGMENT_MAX_VALUE_BYTES;
                if (op.is_none() || full) && !batch.is_empty() {
                    seq += 1;
                    let count = batch.len();
                    let payload = SegmentPayload { seq, prev, ops: std::mem::take(&mut batch) };
                    let bytes = sealer
                        .seal(ObjectId::segment(seq), random::bytes()?, &payload)
                        .map_err(|e| Error::Encode(e.to_string()))?;
                    let hash = *blake3::hash(&bytes).as_bytes();
                    tx.execute(
                        "INSERT INTO own_segments (seq, hash, last_counter, op_count, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![to_sql_u64(seq)?, &hash[..], to_sql_u64(last_counter)?, count, bytes],
                    )?;
                    prev = Some(hash);
                    batch_bytes = 0;
                    made += 1;
                }
                let Some(op) = op else { break };
                batch_bytes += op.key.as_str().len() + 64 + wire_value_len(&op);
                last_counter = op.id.counter;
                batch.push(WireOp::from_op(&op));
            }
        }
        meta_set(&tx, "sealed_counter", to_sql_u64(op_counter)?)?;
        tx.commit()?;
        Ok(made)
    }
}

fn wire_value_len(op: &ferry_format::Op) -> usize {
    match &op.kind {
        ferry_format::OpKind::Put(value) => value.as_str().len(),
        ferry_format::OpKind::Delete => 0,
        ferry_format::OpKind::Forget(_) => 64,
    }
}
