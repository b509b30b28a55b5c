//! Parsed GraphQL documents kept by their text. Dashboards and storefronts send the same few
//! queries over and over, and parsing is the largest cost of a small query (a profile of
//! `product(id:)` under load has the parser and its stack guard at its top), so a document
//! is parsed once and its copy handed to each request. Everything else still runs per
//! request: async-graphql's depth and directive limits, validation, the complexity check and
//! the read budget.
//!
//! Bounded in entries ([`CAPACITY`], least recently used out first) and in query size (a
//! query over [`MOST_CACHED_BYTES`] is parsed every time), so no client can grow it, and a
//! query that does not parse is never kept (async-graphql reports its error as before).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;

/// Documents kept at most.
pub const CAPACITY: usize = 256;

/// The longest query text kept, in bytes.
pub const MOST_CACHED_BYTES: usize = 16 * 1024;

/// The cache, shared by the HTTP workers.
#[derive(Clone)]
pub struct ParsedQueries(Arc<Mutex<LruCache<String, ExecutableDocument>>>);

impl Default for ParsedQueries {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN);
        ParsedQueries(Arc::new(Mutex::new(LruCache::new(capacity))))
    }
}

impl ParsedQueries {
    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, ExecutableDocument>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives `request` its parsed document when the text was parsed before (or parses and
    /// keeps it now, when it may be kept).
    pub fn prepare(&self, request: &mut async_graphql::Request) {
        if request.query.len() > MOST_CACHED_BYTES {
            return;
        }
        let known = self.cache().get(&request.query).cloned();
        let document = match known {
            Some(document) => document,
            None => match async_graphql::parser::parse_query(&request.query) {
                Ok(document) => {
                    self.cache().put(request.query.clone(), document.clone());
                    document
                }
                Err(_) => return,
            },
        };
        request.set_parsed_query(document);
    }

    /// How many documents are kept.
    pub fn len(&self) -> usize {
        self.cache().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_kept_by_text_within_their_bounds() {
        let parsed = ParsedQueries::default();
        let mut request = async_graphql::Request::new("{ products { nodes { id } } }");
        parsed.prepare(&mut request);
        assert_eq!(parsed.len(), 1);
        parsed.prepare(&mut async_graphql::Request::new(
            "{ products { nodes { id } } }",
        ));
        assert_eq!(parsed.len(), 1, "the same text is one entry");
        // Not kept: a query that does not parse, one too long.
        parsed.prepare(&mut async_graphql::Request::new("{ products { "));
        let long = format!("{{ {} }}", "a: products { nodes { id } } ".repeat(1000));
        assert!(long.len() > MOST_CACHED_BYTES);
        parsed.prepare(&mut async_graphql::Request::new(long));
        assert_eq!(parsed.len(), 1);
        for n in 0..(CAPACITY + 10) {
            parsed.prepare(&mut async_graphql::Request::new(format!(
                "{{ p{n}: products {{ nodes {{ id }} }} }}"
            )));
        }
        assert_eq!(parsed.len(), CAPACITY, "the least recently used go");
    }
}
