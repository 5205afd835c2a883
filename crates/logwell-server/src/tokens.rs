//! Pagination tokens. They look like AWS's (`f/` or `b/` and 56 digits) and encode a position in
//! (timestamp, seq) order, so they stay valid across flushes, compactions and new ingestion.

use logwell_model::ApiError;
use logwell_storage::EventKey;

const FLIP: u64 = 1 << 63;

/// Encodes a key after a one-character direction tag.
pub fn encode(tag: char, key: EventKey) -> String {
    format!(
        "{tag}/{:020}{:020}{:016}",
        key.0 as u64 ^ FLIP,
        key.1 as u64 ^ FLIP,
        0
    )
}

/// Decodes a token, returning its tag and key.
pub fn decode(token: &str) -> Result<(char, EventKey), ApiError> {
    let mut chars = token.chars();
    let tag = chars.next().ok_or_else(ApiError::bad_token)?;
    let rest = token
        .get(2..)
        .filter(|_| token.as_bytes().get(1) == Some(&b'/'))
        .ok_or_else(ApiError::bad_token)?;
    if rest.len() != 56 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_token());
    }
    let ts: u64 = rest[..20].parse().map_err(|_| ApiError::bad_token())?;
    let seq: u64 = rest[20..40].parse().map_err(|_| ApiError::bad_token())?;
    Ok((tag, ((ts ^ FLIP) as i64, (seq ^ FLIP) as i64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_junk_is_refused() {
        for key in [
            (i64::MIN, i64::MIN),
            (-5, 3),
            (1_700_000_000_000, 123 << 14),
            (i64::MAX, i64::MAX),
        ] {
            let t = encode('f', key);
            assert_eq!(t.len(), 58);
            assert_eq!(decode(&t).unwrap(), ('f', key));
        }
        assert!(decode("f/123").is_err());
        assert!(decode("garbage").is_err());
        assert!(decode("").is_err());
    }

    #[test]
    fn token_order_follows_key_order() {
        assert!(encode('f', (-1, 0)) < encode('f', (0, 0)));
        assert!(encode('f', (5, 1)) < encode('f', (5, 2)));
    }
}
