//! Many objects in one answer (the peer API's `POST /v1/batch`): a pull fetches a run of
//! segments in one round trip instead of one per segment, which is what a slow or lossy link
//! needs.
//!
//! The request is a JSON array of store paths (at most [`MAX_BATCH`]); the answer holds, for
//! each path in order, one byte (1: held, 0: not held) and, when held, the object's length as
//! 8 bytes big-endian and its bytes (FORMAT.md, Peer API).

/// The most paths one batch may ask for.
pub const MAX_BATCH: usize = 64;

/// Encodes the answer to a batch.
pub fn encode(objects: &[Option<Vec<u8>>]) -> Vec<u8> {
    let size = objects.iter().map(|o| 1 + o.as_ref().map_or(0, |b| 8 + b.len())).sum();
    let mut out = Vec::with_capacity(size);
    for object in objects {
        match object {
            None => out.push(0),
            Some(bytes) => {
                out.push(1);
                out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// Decodes the answer to a batch of `asked` paths; says what is wrong with a malformed one.
///
/// # Errors
/// The answer is cut, holds another number of objects than asked, or an unknown tag.
pub fn decode(mut body: &[u8], asked: usize) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut objects = Vec::with_capacity(asked.min(MAX_BATCH));
    while let Some((&tag, rest)) = body.split_first() {
        if objects.len() == asked {
            return Err(format!("more than the {asked} objects asked for"));
        }
        body = rest;
        match tag {
            0 => objects.push(None),
            1 => {
                let (length, rest) = body.split_first_chunk::<8>().ok_or("an object's length is cut")?;
                let length = usize::try_from(u64::from_be_bytes(*length)).map_err(|_| "an object is too long")?;
                if length > rest.len() {
                    return Err(format!("an object of {length} bytes is cut at {}", rest.len()));
                }
                let (bytes, rest) = rest.split_at(length);
                objects.push(Some(bytes.to_vec()));
                body = rest;
            }
            other => return Err(format!("unknown tag {other}")),
        }
    }
    if objects.len() != asked {
        return Err(format!("{} objects for the {asked} asked for", objects.len()));
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_decodes_to_what_was_encoded_and_damage_is_named() {
        let objects = vec![Some(b"one".to_vec()), None, Some(Vec::new()), Some(vec![7; 300])];
        let body = encode(&objects);
        assert_eq!(decode(&body, 4).unwrap(), objects);
        assert!(decode(&body, 5).unwrap_err().contains("4 objects for the 5"));
        assert!(decode(&body, 3).unwrap_err().contains("more than the 3"));
        assert!(decode(&body[..body.len() - 1], 4).unwrap_err().contains("cut"));
        assert!(decode(&[2], 1).unwrap_err().contains("unknown tag"));
        assert!(decode(&[1, 0, 0], 1).unwrap_err().contains("length is cut"));
        assert!(decode(&[1, 255, 255, 255, 255, 255, 255, 255, 255], 1).unwrap_err().contains("cut"));
    }
}
