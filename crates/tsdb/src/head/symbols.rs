//! String interning for label names and values: each distinct string is stored once
//! per tenant head and series refer to it by a 4-byte id. Symbols are reference
//! counted by the series using them, so strings of series that were garbage
//! collected are freed and their ids reused.

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashMap<Arc<str>, u32>,
    strs: Vec<Arc<str>>,
    /// Uses of each symbol by series labels (a pair counts its name and its value).
    refs: Vec<u32>,
    /// Ids of released symbols, reused by the next new strings.
    free: Vec<u32>,
    /// What a released id points at until reused.
    empty: Arc<str>,
}

impl Symbols {
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    /// The id of `s`, interning it if new; counts one more use.
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            self.refs[id as usize] += 1;
            return id;
        }
        let a: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.strs[id as usize] = a.clone();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.strs.push(a.clone());
                self.refs.push(1);
                (self.strs.len() - 1) as u32
            }
        };
        self.ids.insert(a, id);
        id
    }

    /// Counts one use less; the string is freed when nothing uses it.
    pub(crate) fn release(&mut self, id: u32) {
        let r = &mut self.refs[id as usize];
        *r -= 1;
        if *r == 0 {
            let s = std::mem::replace(&mut self.strs[id as usize], self.empty.clone());
            self.ids.remove(&s);
            self.free.push(id);
        }
    }

    pub(crate) fn str(&self, id: u32) -> &Arc<str> {
        &self.strs[id as usize]
    }

    /// A copy of every string by id (for work done outside the head's lock).
    pub(crate) fn snapshot(&self) -> Vec<Arc<str>> {
        self.strs.clone()
    }

    /// Strings in use.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_symbols_are_freed_and_their_ids_reused() {
        let mut s = Symbols::default();
        let a = s.intern("a");
        assert_eq!(s.intern("a"), a);
        let b = s.intern("b");
        s.release(a);
        assert_eq!(s.get("a"), Some(a), "one use left");
        s.release(a);
        assert_eq!(s.get("a"), None);
        assert_eq!(s.len(), 1);
        let c = s.intern("c");
        assert_eq!(c, a, "a freed id is reused");
        assert_eq!(&**s.str(c), "c");
        assert_eq!(&**s.str(b), "b");
    }
}
