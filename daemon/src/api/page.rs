//! Cursor paging for the lists keyed by name or id (workflows, plugins,
//! tenants, tokens, versions). A cursor is the key of the last item of the
//! previous page, so a page stays correct while items are added or removed
//! before it; runs, backfills and their windows page the same way on their
//! own typed keys.

use serde::Deserialize;

use super::ApiError;

/// Default and largest page of the name-keyed lists.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Continue after this cursor (the `next` of the previous page).
    pub after: Option<String>,
    /// Items per page (1..=1000, default 100).
    pub limit: Option<usize>,
}

/// How a list's items map to ordered cursors.
pub trait Cursor: Sized + Ord + Clone {
    fn parse(raw: &str) -> Option<Self>;
    /// What a well-formed cursor looks like, for the error message.
    const SHAPE: &'static str;
}

impl Cursor for String {
    fn parse(raw: &str) -> Option<Self> {
        Some(raw.to_owned())
    }
    const SHAPE: &'static str = "a name";
}

macro_rules! number_cursor {
    ($($t:ty),*) => {$(
        impl Cursor for $t {
            fn parse(raw: &str) -> Option<Self> {
                raw.parse().ok()
            }
            const SHAPE: &'static str = "a number";
        }
    )*};
}

number_cursor!(u64, u32);

/// A plugin version: `NAME:VERSION` (see [`plugin_cursor`]).
impl Cursor for (String, u32) {
    fn parse(raw: &str) -> Option<Self> {
        let (name, version) = raw.rsplit_once(':')?;
        Some((name.to_owned(), version.parse().ok()?))
    }
    const SHAPE: &'static str = "NAME:VERSION";
}

/// How a plugin list's cursor is written.
pub fn plugin_cursor((name, version): (String, u32)) -> String {
    format!("{name}:{version}")
}

impl PageQuery {
    /// The page of `items` after the cursor, in key order, and the cursor
    /// of the next page (`None` on the last one).
    pub fn apply<T, K: Cursor>(
        &self,
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> K,
    ) -> Result<(Vec<T>, Option<K>), ApiError> {
        let after = match &self.after {
            None => None,
            Some(raw) => Some(K::parse(raw).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_argument",
                    format!("after: {raw:?} is not a cursor of this list ({})", K::SHAPE),
                )
            })?),
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let mut page: Vec<(K, T)> = items
            .into_iter()
            .map(|t| (key(&t), t))
            .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
            .collect();
        // Stores list in key order already; sorting keeps the cursor
        // contract true for any that does not.
        page.sort_by(|a, b| a.0.cmp(&b.0));
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok((page.into_iter().map(|(_, t)| t).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(after: Option<&str>, limit: usize) -> PageQuery {
        PageQuery {
            after: after.map(str::to_owned),
            limit: Some(limit),
        }
    }

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let items: Vec<(String, u32)> = ["b", "a", "c"]
            .iter()
            .flat_map(|n| (1..=3).map(move |v| (n.to_string(), v)))
            .collect();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = q(after.as_deref(), 4)
                .apply(items.clone(), |p| p.clone())
                .unwrap();
            seen.extend(page);
            match next {
                Some(c) => after = Some(plugin_cursor(c)),
                None => break,
            }
        }
        let mut want = items.clone();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn last_page_has_no_next_and_bad_cursor_is_named() {
        let (page, next) = q(Some("2"), 10).apply(1u64..=5, |n| *n).unwrap();
        assert_eq!(page, vec![3, 4, 5]);
        assert_eq!(next, None);
        let (page, next) = q(None, 2).apply(1u64..=5, |n| *n).unwrap();
        assert_eq!((page, next), (vec![1, 2], Some(2)));
        let err = q(Some("x"), 2).apply(1u64..=5, |n| *n).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.message.contains("after: \"x\""), "{}", err.message);
        let err = q(Some("hello"), 2)
            .apply(Vec::<(String, u32)>::new(), |p| p.clone())
            .unwrap_err();
        assert!(err.message.contains("NAME:VERSION"), "{}", err.message);
    }
}
