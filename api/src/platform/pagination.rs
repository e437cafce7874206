//! Keyset pagination, shared by every `/v1` list: fetch one row more than the page to learn whether another
//! page follows, and answer the last row's key as the cursor (`next`, sent back as `after`).

/// The largest page.
pub const MAX_PAGE: u64 = 100;

/// How many rows to fetch for a requested `limit` (clamped to 1–100): the page plus one.
pub fn fetch_size(limit: u64) -> u64 {
    limit.clamp(1, MAX_PAGE) + 1
}

/// The page out of rows fetched with [`fetch_size`], and the next page's cursor if there is one.
pub fn page<T, K>(mut rows: Vec<T>, limit: u64, key: impl Fn(&T) -> K) -> (Vec<T>, Option<K>) {
    let size = usize::try_from(limit.clamp(1, MAX_PAGE)).unwrap_or(usize::MAX);
    let more = rows.len() > size;
    rows.truncate(size);
    let next = if more { rows.last().map(key) } else { None };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_only_when_more_rows_follow() {
        assert_eq!(fetch_size(0), 2);
        assert_eq!(fetch_size(1000), MAX_PAGE + 1);
        assert_eq!(page(vec![1, 2, 3], 2, |row| *row), (vec![1, 2], Some(2)));
        assert_eq!(page(vec![1, 2], 2, |row| *row), (vec![1, 2], None));
        assert_eq!(page(Vec::<u8>::new(), 5, |row| *row), (vec![], None));
    }
}
