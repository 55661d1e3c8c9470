//! Paging and query parsing shared by the list endpoints: `page` (1-based) and `limit`
//! (default 100, at most 10 000), answered as `{"data": [...], "meta": {page, limit, count,
//! hasnext}}` like EMQX.

use crate::error::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Query string as a map; parsed by hand so a bad value is a 400 with our error shape.
pub type Params = HashMap<String, String>;

/// Requested page.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// 1-based page number.
    pub page: usize,
    /// Items per page.
    pub limit: usize,
}

const MAX_LIMIT: usize = 10_000;

impl Page {
    /// Reads `page` and `limit`.
    pub fn from(params: &Params) -> ApiResult<Page> {
        let page = opt_num(params, "page")?.unwrap_or(1);
        let limit = opt_num(params, "limit")?.unwrap_or(100);
        if page == 0 || limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "page must be >= 1 and limit 1..={MAX_LIMIT}"
            )));
        }
        Ok(Page { page, limit })
    }

    /// Index of the first item of the page.
    pub fn skip(&self) -> usize {
        self.page.saturating_sub(1).saturating_mul(self.limit)
    }

    /// Cuts `items` to this page and wraps it with `meta`.
    pub fn wrap(&self, items: Vec<Value>) -> Value {
        let count = items.len();
        let data: Vec<Value> = items
            .into_iter()
            .skip(self.skip())
            .take(self.limit)
            .collect();
        let hasnext = self.skip().saturating_add(data.len()) < count;
        json!({
            "data": data,
            "meta": { "page": self.page, "limit": self.limit, "count": count, "hasnext": hasnext },
        })
    }
}

/// An optional unsigned number parameter.
pub fn opt_num(params: &Params, key: &str) -> ApiResult<Option<usize>> {
    match params.get(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("{key}: not a non-negative integer: {v:?}"))
        }),
    }
}

/// An optional boolean parameter (`true`/`false`).
pub fn opt_bool(params: &Params, key: &str) -> ApiResult<Option<bool>> {
    match params.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!(
            "{key}: expected true or false, got {v:?}"
        ))),
    }
}

/// A non-empty string parameter.
pub fn opt_str<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_meta() {
        let p = Page { page: 2, limit: 2 };
        let v = p.wrap((0..5).map(|i| json!(i)).collect());
        assert_eq!(v["data"], json!([2, 3]));
        assert_eq!(v["meta"]["count"], json!(5));
        assert_eq!(v["meta"]["hasnext"], json!(true));
        let p = Page { page: 3, limit: 2 };
        assert_eq!(
            p.wrap((0..5).map(|i| json!(i)).collect())["meta"]["hasnext"],
            json!(false)
        );
    }

    #[test]
    fn bad_numbers_are_400() {
        let mut q = Params::new();
        q.insert("page".into(), "x".into());
        assert!(Page::from(&q).is_err());
        q.insert("page".into(), "0".into());
        assert!(Page::from(&q).is_err());
    }
}
