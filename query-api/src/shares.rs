//! Per-subject shares of what one process gives out at once (read-your-writes waiters, live
//! subscribers, full-log verifications): one token subject may hold at most its share, so a
//! single caller cannot take everyone's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts what each subject holds, up to `per_subject`.
#[derive(Debug, Clone)]
pub struct SubjectShares {
    held: Arc<Mutex<HashMap<String, usize>>>,
    per_subject: usize,
}

/// One unit of a subject's share; given back when dropped.
#[derive(Debug)]
pub struct Share {
    held: Arc<Mutex<HashMap<String, usize>>>,
    subject: String,
}

impl SubjectShares {
    /// At most `per_subject` (at least 1) at once per subject.
    pub fn new(per_subject: usize) -> SubjectShares {
        SubjectShares {
            held: Arc::default(),
            per_subject: per_subject.max(1),
        }
    }

    /// The most one subject holds at once.
    pub fn per_subject(&self) -> usize {
        self.per_subject
    }

    /// A unit of `subject`'s share, or `None` when it holds all of it.
    pub fn take(&self, subject: &str) -> Option<Share> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(subject.to_owned()).or_insert(0);
        if *count >= self.per_subject {
            return None;
        }
        *count += 1;
        Some(Share {
            held: self.held.clone(),
            subject: subject.to_owned(),
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_holds_at_most_its_share_and_gets_it_back() {
        let shares = SubjectShares::new(2);
        let a1 = shares.take("a").unwrap();
        let _a2 = shares.take("a").unwrap();
        assert!(shares.take("a").is_none());
        assert!(shares.take("b").is_some(), "others are served");
        drop(a1);
        assert!(shares.take("a").is_some());
        assert_eq!(SubjectShares::new(0).per_subject(), 1);
    }
}
